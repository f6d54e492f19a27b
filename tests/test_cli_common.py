"""Prompts only on a terminal; errors are one line with exit code 2."""
import io
import sys

import pytest

from discordpicextract import cli


def _body(argv):
    parser = cli.ArgumentParser(prog="tool")
    parser.add_argument("--days", type=int)
    args = parser.parse_args(argv)
    days = args.days if args.days is not None else cli.ask("Days: ", flag="--days", parse=int)
    print(f"days={days}")
    return 0


def test_missing_value_without_terminal_exits_2(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert cli.run(_body, []) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "--days" in err and err.count("\n") == 1


def test_malformed_flag_is_one_line_exit_2(capsys):
    assert cli.run(_body, ["--days", "many"]) == 2
    err = capsys.readouterr().err
    assert "invalid int value" in err and "Traceback" not in err


def test_interactive_prompt_asks_again_on_bad_answer(capsys, monkeypatch):
    monkeypatch.setenv(cli.INTERACTIVE_ENV, "1")
    monkeypatch.setattr(sys, "stdin", io.StringIO("soon\n7\n"))
    assert cli.run(_body, []) == 0
    out = capsys.readouterr().out
    assert out.count("Days: ") == 2 and "days=7" in out


def test_end_of_input_while_prompting_is_a_usage_error(monkeypatch):
    monkeypatch.setenv(cli.INTERACTIVE_ENV, "1")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert cli.run(_body, []) == 2


def test_help_returns_zero():
    with pytest.raises(SystemExit):
        cli.ArgumentParser(prog="t").parse_args(["--help"])
    assert cli.run(_body, ["--help"]) == 0


def test_output_piped_into_head_ends_without_traceback(tmp_path, make_image):
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    for day in range(1, 29):
        for hour in (10, 11, 12):
            make_image(tmp_path / "src" / f"2025-02-{day:02d}_{hour}-00-00_c.png", seed=day)
    command = (f'"{sys.executable}" "{root / "extract_one_per_day.py"}" --dry-run '
               f'--source "{tmp_path / "src"}" --output "{tmp_path / "out"}" | head -n 1')
    run = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True,
                         timeout=60, env={**__import__("os").environ, "PYTHONUNBUFFERED": "1"})
    assert run.stdout.startswith("Scanning images in:")
    assert "Traceback" not in run.stderr and "BrokenPipe" not in run.stderr
