"""The `mace-dance` command line: one module per command group; commands parse options and call the backend."""

from __future__ import annotations

import os
import sys

import typer

from backend.cli import data, server, train, train_ae, video
from backend.cli.common import CliError, console
from backend.cli.comp import comp
from backend.cli.dance import generate

app = typer.Typer(add_completion=False, no_args_is_help=True, help="MACE-Dance: music to 3D dance.")
app.command()(data.analyse)
app.command()(generate)
app.command()(comp)
app.command()(server.fetch)
app.command()(server.serve)
app.command()(server.keys)
app.command()(video.video)
app.command()(video.poses)
app.command()(data.bench)
app.command("train-ae")(train_ae.train_ae_cmd)
app.command("prepare-data")(data.prepare_data)
app.command("eval")(data.evaluate)
app.command()(train.train)

__all__ = ["app", "main", "generate", "comp", "CliError", "plain_metavars"]


# --help shows a value's kind in words, not as a Python type (<float>, <list[Path]>); a flag takes no value
PLAIN_METAVARS = {"str": "TEXT", "int": "N", "float": "NUMBER", "Path": "PATH", "bool": "", "list[str]": "TEXT",
                  "list[Path]": "PATH"}


def plain_metavars(command) -> None:
    """Give every option of `command` (a click command or group) without a metavar one in words."""
    for param in getattr(command, "params", []):  # typer's own (vendored) click: told apart by name, not class
        if getattr(param, "param_type_name", "") == "option" and param.metavar is None:
            kind = "bool" if getattr(param, "is_flag", False) else param.bare_type()
            param.metavar = PLAIN_METAVARS.get(kind, kind.upper())
    own_help = command.get_help_option

    def help_option(ctx):  # --help is made when asked for, not kept in params
        option = own_help(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = help_option
    for sub in getattr(command, "commands", {}).values():
        plain_metavars(sub)


def main() -> None:
    """Entry point: run the app, turn expected failures into one clear line, and leave without Python's teardown."""
    try:
        _run()
        code = 0
    except SystemExit as exc:
        code = exc.code
    _leave(code)


def _leave(code) -> None:
    """Exit with `code` (SystemExit's meaning): the output flushed and the atexit handlers run (temporary folders,
    the forked analysis, logging), then os._exit, skipping the interpreter's teardown: after a dance, clearing
    torch's modules and the heap took 0.3-0.5 s of a 3-s run, with nothing left to save. Where a thread of ours is
    still working, the ordinary exit waits for it instead."""
    import atexit
    import threading

    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed pipe (`| head`): Python's own exit says 120 then
            code = code or 120
    try:  # what C libraries printed through their own buffers
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except Exception:  # noqa: BLE001 - no C library to ask (not a POSIX system)
        pass
    os._exit(code)


def _run() -> None:
    """The app, with expected failures as one line and an exit code (SystemExit)."""
    from backend.cpu_threads import policy
    from backend.runtime import tune_allocator

    from backend.music import audio

    debug = bool(os.environ.get("MACE_DANCE_DEBUG"))
    audio.HOLD_DECODER_NOISE = not debug  # a person reads this terminal: one sentence, not libmpg123's notes
    tune_allocator()
    try:
        policy()  # its first window of the machine's load runs while the CLI imports and reads the song
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(2)
    try:
        command = typer.main.get_command(app)
        plain_metavars(command)
        code = command(standalone_mode=False)  # without standalone mode a typer.Exit comes back as its code
        if isinstance(code, int) and code:
            sys.exit(code)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the CLI boundary: every failure becomes one line
        if debug:
            raise
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # typer's (vendored click's) usage errors
            exc.show()
            sys.exit(exc.exit_code)
        message = str(exc) or type(exc).__name__
        console.print(f"[red]error:[/red] {message}", highlight=False)
        if not isinstance(exc, (ValueError, OSError, CliError, LookupError)):
            console.print("(unexpected; set MACE_DANCE_DEBUG=1 for the traceback)", style="dim")
        sys.exit(2)
