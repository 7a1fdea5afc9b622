"""`mace-dance --help` in an animator's words (issue 33, item 7): values named in words, no Python types."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_option_names_its_value_in_words():
    import typer

    from backend.cli import app, plain_metavars

    group = typer.main.get_command(app)
    plain_metavars(group)
    for name, command in group.commands.items():
        for param in command.params:
            if param.param_type_name != "option":
                continue
            assert param.metavar is not None, (name, param.name)
            assert not any(c in param.metavar for c in "<[]>"), (name, param.name, param.metavar)
            if param.is_flag:
                assert param.metavar == "", (name, param.name)  # a flag takes no value: none shown


def test_generate_help_has_no_python_types_or_old_jargon():
    res = subprocess.run([sys.executable, "-m", "backend.cli", "generate", "--help"], capture_output=True, text=True,
                         cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "COLUMNS": "200"})
    assert res.returncode == 0, res.stderr
    options = res.stdout.split("Options")[1]  # the arguments' panel shows typer's own <path>
    for word in ("<float>", "<int>", "<bool>", "<str>", "<path>", "list[", "Guidance temperature", "livelier"):
        assert word not in options, word
    assert "SECONDS" in options and "DANCE.NPZ" in options
