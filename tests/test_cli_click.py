"""The ``bullbridge`` command on click: the root's ``--version`` and help, usage errors in one
line at every level, process options anywhere (the failure matrix is tests/test_cli_failures.py)."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import pytest

import bullbridge
from bullbridge.cli import build_cli, main


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """main() configures the root logger as the command would; give the rest of the session its own back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_version_and_help_list_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith(f"bullbridge {bullbridge.__version__} (Python ")
    assert main(["-h"]) == 0
    text = capsys.readouterr().out
    for name, command in build_cli().commands.items():
        assert f"  {name} " in text and not command.hidden
    assert "exit codes: 0 ok" in text


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["queue", "retry"], "bullbridge queue retry: Missing argument 'QUEUE' (see bullbridge queue retry --help)"),
        (["queue", "clean", "q", "--state", "done", "--age", "1h"], "Invalid value for '--state'"),
        (["queue", "clean", "q", "--state", "failed", "--age", "soon"], "not a duration: 'soon'"),
        (["schedule"], "bullbridge schedule: Missing command (see bullbridge schedule --help)"),
        (["nope"], "bullbridge: No such command 'nope' (see bullbridge --help)"),
        (["schedule", "list", "--log-level", "loud"], "unknown log level 'loud'"),
        (["migrate", "report", "q", "--since", "whenever"], "not a time: 'whenever'"),
    ],
)
def test_usage_errors_are_one_line_exit_2(argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and says in err, err


def test_process_options_at_any_level(capsys: pytest.CaptureFixture[str]) -> None:
    # after a nested command's name, and before the top command's name: both parse, the command runs
    assert (
        main(["schedule", "preview", "0 3 * * *", "-n", "1", "--from", "2026-01-01T00:00:00Z", "--log-level", "debug"])
        == 0
    )
    assert capsys.readouterr().out.strip() == "2026-01-01T03:00:00.000Z"
    assert main(["--log-level", "WARNING", "schedule", "preview", "@daily", "-n", "1", "--from", "2026-01-01"]) == 0
    assert capsys.readouterr().out.strip() == "2026-01-02T00:00:00.000Z"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_tables_on_a_terminal_are_rich_and_never_markup(monkeypatch: pytest.MonkeyPatch) -> None:
    from bullbridge.cli.output import emit_table

    rows = [["[red]evil\x1b]0;owned\x07", "1204"], ["email", "3"]]
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setenv("COLUMNS", "100")
    emit_table(["QUEUE", "DONE"], rows, [False, True])
    shown = terminal.getvalue()
    assert "\x1b[1m" in shown  # a bold header: rich drew it
    assert "[red]evil\\x1b]0;owned\\x07" in shown and "\x07" not in shown  # as text, escaped
    narrow = _Terminal()
    monkeypatch.setattr(sys, "stdout", narrow)
    monkeypatch.setenv("COLUMNS", "20")  # too narrow: the plain aligned lines, whole
    emit_table(["QUEUE", "DONE"], rows, [False, True])
    assert narrow.getvalue().splitlines()[1].startswith("-----") and "\x1b[1m" not in narrow.getvalue()
    piped = io.StringIO()
    monkeypatch.setattr(sys, "stdout", piped)
    emit_table(["QUEUE", "DONE"], rows, [False, True])
    assert piped.getvalue().splitlines()[2] == "[red]evil\\x1b]0;owned\\x07  1204"
