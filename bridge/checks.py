"""Checks for values that arrive from a peer: each returns the value in its type or raises OptionError naming it.

Whatever a client sends ends up in job.json and in the runners, so a value JSON cannot hold (bytes, an ext type, a
timestamp), a nested structure where a number belongs, or a name nobody knows is refused with a sentence naming the
field before anything is stored.
"""

from __future__ import annotations

import math
from typing import Any, Callable

Check = Callable[[str, Any], Any]


class OptionError(ValueError):
    """A submitted option that cannot be taken; the message names it."""


def fail(name: str, what: str, value: Any) -> None:
    """Raise the one-sentence error for option `name`."""
    raise OptionError(f"option {name!r} must be {what}, got {repr(value)[:60]}")


def number(lo: float = -math.inf, hi: float = math.inf) -> Check:
    """A finite number in [lo, hi]."""
    def check(name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            fail(name, "a finite number", value)
        if not lo <= value <= hi:
            fail(name, f"between {lo:g} and {hi:g}", value)
        return float(value)
    return check


def integer(lo: int = -(2 ** 53), hi: int = 2 ** 53) -> Check:
    """A whole number in [lo, hi]."""
    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail(name, "a whole number", value)
        if not lo <= value <= hi:
            fail(name, f"between {lo} and {hi}", value)
        return int(value)
    return check


def boolean(name: str, value: Any) -> bool:
    """True or false (not 0 or 1)."""
    if not isinstance(value, bool):
        fail(name, "true or false", value)
    return value


def text(limit: int = 256) -> Check:
    """A string of at most `limit` characters."""
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or len(value) > limit:
            fail(name, f"a string of at most {limit} characters", value)
        return value
    return check


def optional(inner: Check) -> Check:
    """None or what `inner` takes."""
    def check(name: str, value: Any) -> Any:
        return None if value is None else inner(name, value)
    return check


def list_of(inner: Check, limit: int) -> Check:
    """A list of at most `limit` items, each checked by `inner`."""
    def check(name: str, value: Any) -> list:
        if not isinstance(value, list) or len(value) > limit:
            fail(name, f"a list of at most {limit} items", value)
        return [inner(f"{name}[{i}]", v) for i, v in enumerate(value)]
    return check


def fields(spec: dict[str, Check]) -> Check:
    """A map whose keys are all in `spec`, each value checked by its entry."""
    def check(name: str, value: Any) -> dict:
        if not isinstance(value, dict):
            fail(name, "a map", value)
        return checked(value, spec, prefix=f"{name}.")
    return check


def pair_of(inner: Check, what: str) -> Check:
    """A [first, second] pair, each checked by `inner`."""
    def check(name: str, value: Any) -> list:
        if not isinstance(value, list) or len(value) != 2:
            fail(name, what, value)
        return [inner(f"{name}[0]", value[0]), inner(f"{name}[1]", value[1])]
    return check


def matrix4(name: str, value: Any) -> list[list[float]]:
    """A 4x4 matrix as four rows of four numbers."""
    if not isinstance(value, list) or len(value) != 4 or not all(isinstance(r, list) and len(r) == 4 for r in value):
        fail(name, "a 4x4 matrix (four rows of four numbers)", value)
    return [list_of(number(), 4)(f"{name}[{i}]", row) for i, row in enumerate(value)]


def checked(options: dict, spec: dict[str, Check], prefix: str = "") -> dict:
    """Every entry of `options` checked by its entry in `spec`; an unknown key is refused."""
    unknown = sorted(str(k) for k in options if k not in spec)
    if unknown:
        raise OptionError(f"unknown option {prefix}{unknown[0]!s:.40}; known: {', '.join(spec)}")
    return {key: spec[key](prefix + key, value) for key, value in options.items()}
