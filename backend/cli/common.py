"""What every command shares: the console, the one-line error, range checks and the server client."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console

console = Console(stderr=True, soft_wrap=True)  # soft wrap: an error stays one line

DEFAULT_OUT = Path("out")


class CliError(Exception):
    """An error to show the user as one line."""


def check_range(flag: str, value: float, what: str, low: float, high: float, closed: bool = True) -> None:
    """Raise a one-line CliError unless low <= value <= high (value < high when not `closed`)."""
    if not (low <= value <= high if closed else low <= value < high):
        raise CliError(f"{flag} must be {what} in [{low:g}, {high:g}{']' if closed else ')'}, got {value}")


def seconds_range(text: str) -> tuple[float, float]:
    """A START:END text in seconds as two numbers with 0 <= START < END."""
    try:
        a, b = (float(v) for v in text.split(":"))
    except ValueError:
        raise CliError(f"a time range is START:END in seconds, got {text!r}") from None
    if not 0 <= a < b:
        raise CliError(f"time range {text!r} must have 0 <= START < END")
    return a, b


def server_key_option() -> Any:
    """The --server-key option of the commands that may run on a CURVE server."""
    return typer.Option(None, "--server-key", metavar="SERVER.KEY",
                        help="With --server: the server's public key file, for a server with keys (`serve --keys`).")


def client_key_option() -> Any:
    """The --keys option: this user's secret key file for a CURVE server."""
    return typer.Option(None, "--keys", "--client-key", metavar="NAME.KEY_SECRET",
                        help="With --server: your secret key file (clients/NAME.key_secret from `mace-dance keys`).")


def client(server: str, server_key: Optional[Path], client_key: Optional[Path]):
    """A blocking client for `server`, with CURVE keys when both key files are given (one line if they are bad)."""
    from backend.server.security import KeysError, load_client_keys, load_public_key
    from bridge.client import Client

    if (server_key is None) != (client_key is None):
        raise CliError("a keyed server needs both --server-key (its server.key) and --keys (your .key_secret)")
    if server_key is None:
        return Client(server)
    for path in (server_key, client_key):
        if not path.is_file():
            raise CliError(f"{path}: key file not found")
    try:
        return Client(server, server_public_key=load_public_key(server_key),
                      client_keys=load_client_keys(client_key))
    except (KeysError, ValueError, OSError) as exc:
        raise CliError(f"{client_key}: not a usable key file ({exc})") from None


def submit_showing_upload(client, audio: Path, request) -> str:
    """Submit a dance request; a song big enough to go up in chunks shows its upload's progress. The job's id."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    with Progress(TextColumn("uploading {task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task(Path(audio).name, total=None)
        return client.submit_request(audio, request, lambda sent, total: bar.update(task, completed=sent, total=total))


def follow_job(client, job: str, server: str, steps: int):
    """Show a job's progress until its result message; Ctrl-C cancels the job on the server."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(f"waiting on {server}", total=steps)
        try:
            return client.wait_result(job, lambda m: bar.update(task, completed=m.get("step"), total=m.get("total"),
                                                                 description=f"{m.get('stage')} on {server}"))
        except KeyboardInterrupt:
            client.bridge.cancel(job)
            try:
                client.wait_result(job)
            except Exception:  # noqa: BLE001 - the cancellation answer is what we wait for
                pass
            console.print(f"cancelled job {job} on {server}")
            raise typer.Exit(130) from None


def step_bar(description: str, total: int):
    """A transient progress bar for local sampling."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TimeElapsedColumn(), console=console, transient=True)
    return bar, bar.add_task(description, total=total)


def with_options(table: dict) -> Callable:
    """Give a command taking **flags one CLI option per entry of `table` (name: (type, typer.Option))."""
    def wrap(fn: Callable) -> Callable:
        params = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
                  for name, (kind, option) in table.items()]
        fn.__signature__ = inspect.Signature(params)
        fn.__annotations__ = {**{name: kind for name, (kind, _) in table.items()}, "return": None}
        return fn
    return wrap
