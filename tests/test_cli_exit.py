"""The CLI leaves without Python's teardown (0.3-0.5 s after a dance), yet with its exit code, its output flushed,
its atexit handlers run, and a working thread of its own waited for."""

import subprocess
import sys


def _run(code: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)


def test_leaving_keeps_the_code_the_output_and_the_atexit_handlers(tmp_path):
    marker = tmp_path / "atexit.txt"
    done = _run("import atexit, sys\n"
                "from backend.cli import _leave\n"
                f"atexit.register(lambda: open({str(marker)!r}, 'w').write('ran'))\n"
                "print('unflushed line without newline', end='')\n"
                "sys.stderr.write('a note')\n"
                "_leave(3)\n"
                "print('never')\n", tmp_path)
    assert done.returncode == 3
    assert done.stdout == "unflushed line without newline"
    assert done.stderr == "a note"
    assert marker.read_text() == "ran"


def test_a_message_code_is_printed_and_exits_with_one(tmp_path):
    done = _run("from backend.cli import _leave\n_leave('the reason')\n", tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip() == "the reason"


def test_a_working_thread_of_its_own_is_waited_for(tmp_path):
    """A non-daemon thread still working at the end: the ordinary exit, which waits for it (os._exit would kill it
    before it wrote its file)."""
    out = tmp_path / "thread.txt"
    done = _run("import threading, time\n"
                "from backend.cli import _leave\n"
                "def work():\n"
                "    while threading.main_thread().is_alive():\n"
                "        time.sleep(0.01)\n"
                f"    open({str(out)!r}, 'w').write('finished')\n"
                "threading.Thread(target=work).start()\n"
                "_leave(0)\n", tmp_path)
    assert done.returncode == 0, done.stderr
    assert out.read_text() == "finished"


def test_a_commands_own_exit_code_survives(tmp_path):
    """A command that ends with typer.Exit(n) (a job cancelled with Ctrl-C says 130): the process exits with n (the
    click command returns it in non-standalone mode, and it was dropped for 0)."""
    done = _run("import sys, typer\n"
                "import backend.cli as cli\n"
                "@cli.app.command()\n"
                "def stop():\n"
                "    raise typer.Exit(7)\n"
                "sys.argv = ['mace-dance', 'stop']\n"
                "cli.main()\n", tmp_path)
    assert done.returncode == 7, done.stderr
