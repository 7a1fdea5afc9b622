"""The CLI's dance options derived from bridge.request.DanceRequest: flag, default, help and check in one place."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Optional

import typer

from bridge.request import DanceRequest, RequestError, Spec, option_fields

TYPES = {"number": float, "integer": int, "flag": bool, "choice": str}
# what --help shows for a value when the spec names none: words, not Python types; a flag takes no value
METAVARS = {"number": "NUMBER", "integer": "N", "flag": ""}


def typer_option(name: str, spec: Spec, default: Any) -> Any:
    """The typer.Option of one request field."""
    flag = spec.flag or "--" + name.replace("_", "-")
    if spec.kind == "flag" and spec.negatable:
        flag = f"{flag}/--no-{flag[2:]}"
    metavar = spec.metavar if spec.metavar is not None else METAVARS.get(spec.kind, "|".join(spec.choices))
    return typer.Option(default, flag, help=spec.help, metavar=metavar)


def with_request_options(*exclude: str, cls: type = DanceRequest) -> Callable:
    """Give a command (taking **request) one CLI option per field of the request class, less `exclude`."""
    def wrap(fn: Callable) -> Callable:
        sig = inspect.signature(fn)
        own = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        hints = {p.name: fn.__annotations__.get(p.name) for p in own}
        extra = []
        for f in option_fields(cls):
            spec = f.metadata["spec"]
            if f.name in exclude:
                continue
            kind = TYPES[spec.kind]
            hints[f.name] = Optional[kind] if spec.optional else kind
            extra.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                           default=typer_option(f.name, spec, f.default), annotation=hints[f.name]))
        fn.__signature__ = sig.replace(parameters=own + extra)
        fn.__annotations__ = {**hints, "return": None}
        return fn
    return wrap


def request_from_options(values: dict[str, Any], cls: type = DanceRequest, **parts: Any) -> DanceRequest:
    """The checked request of the command's request options (RequestError naming a bad one)."""
    names = {f.name for f in option_fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names}, **parts).validate()


__all__ = ["RequestError", "request_from_options", "with_request_options"]
