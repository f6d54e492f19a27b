"""What the scripts share: prompts only on a terminal; errors are one line with exit code 2;
entries named like images that cannot be read are reported, skipped, and make the exit code 1."""
import io
import sys

import pytest
from helpers import write_image

import check_unique_dates
import deduplicate_images
import extract_one_per_day
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
    out, err = capsys.readouterr()
    assert err.count("Days: ") == 2 and "days=7" in out  # the prompt on stderr, the result on stdout
    assert "Days: " not in out


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


SKIPPED_NAMES = "Skipped 2 image name(s) that are not readable files"


@pytest.mark.parametrize("script, argv, summary", [
    pytest.param(check_unique_dates, ["--folders", "src", "other"], SKIPPED_NAMES, id="check_unique_dates"),
    pytest.param(deduplicate_images, ["--source", "src", "--output", "out"], "  Skipped, not a readable file: 2\n",
                 id="deduplicate_images"),
    pytest.param(extract_one_per_day, ["--source", "src", "--output", "out"], SKIPPED_NAMES, id="extract_one_per_day"),
])
def test_image_named_folder_and_broken_link_are_reported_exit_1(script, argv, summary, tmp_path, capsys):
    # Running as root, chmod 000 reads fine: a folder and a dangling link
    # named like images are the entries that cannot be read or copied.
    good = "2025-02-14_10-00-00_a.png"
    write_image(tmp_path / "src" / good, seed=1)
    write_image(tmp_path / "other" / good, seed=1)
    (tmp_path / "src" / "2025-02-18_11-00-00_dir.png").mkdir()
    (tmp_path / "src" / "2025-02-18_12-00-00_link.png").symlink_to(tmp_path / "gone.png")

    code = script.main(argv)
    out, err = capsys.readouterr()

    assert code == 1
    assert "skipped 2025-02-18_11-00-00_dir.png: not a readable file" in err
    assert "skipped 2025-02-18_12-00-00_link.png: not a readable file" in err
    assert summary in out
    assert "Traceback" not in err
    if "--output" in argv:
        copied = sorted(entry.name for entry in (tmp_path / "out").iterdir() if not entry.name.startswith("."))
        assert copied == [good]
