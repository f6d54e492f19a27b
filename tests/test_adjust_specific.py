"""adjust_specific_timestamp.py through main(argv) and as a subprocess."""
import io
import subprocess
import sys

import pytest
from helpers import ROOT, contents, fill, n

import adjust_specific_timestamp as specific
import config

NAMES = [n("2025-03-09T23:30:00"), n("2025-03-10T08:00:00"), n("2025-03-10T12:00:00"),
         n("2025-03-10T17:00:00"), n("2025-03-11T16:30:00"), n("2025-03-12T17:00:00")]


def run(capsys, *argv):
    code = specific.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_date_and_after_condition(tmp_path, capsys):
    folder = fill(tmp_path / "f", NAMES)
    before = contents(folder)
    code, out, _ = run(capsys, "--folders", str(folder), "--date", "2025-03-10", "--after", "16:00:00",
                       "--hours", "-1", "-v")
    assert code == 0
    assert f"RENAMED: {NAMES[3]} -> {n('2025-03-10T16:00:00')}" in out
    assert "Matched: 1\n  Renamed: 1\n  Skipped: 0" in out
    after = contents(folder)
    assert after[n("2025-03-10T16:00:00")] == before[NAMES[3]]
    assert {k: v for k, v in after.items() if k != n("2025-03-10T16:00:00")} == \
        {k: v for k, v in before.items() if k != NAMES[3]}


def test_range_with_before_and_after_rolls_over_midnight(tmp_path, capsys):
    folders = [fill(tmp_path / name, NAMES) for name in ("a", "b", "c")]
    code, out, _ = run(capsys, "--folders", *map(str, folders), "--from", "2025-03-10", "--to", "2025-03-12",
                       "--after", "16:00:00", "--before", "17:30:00", "--hours", "7.5")
    assert code == 0 and "Total renamed: 9" in out
    for folder in folders:
        assert (folder / n("2025-03-11T00:30:00")).exists()    # 03-10 17:00 + 7.5 h
        assert (folder / n("2025-03-12T00:00:00")).exists()    # 03-11 16:30 + 7.5 h
        assert (folder / n("2025-03-13T00:30:00")).exists()    # 03-12 17:00 + 7.5 h
        assert (folder / NAMES[0]).exists() and (folder / NAMES[2]).exists()


def test_dry_run_and_undo(tmp_path, capsys):
    folder = fill(tmp_path / "f", NAMES)
    before = contents(folder)
    code, out, _ = run(capsys, "--folders", str(folder), "--date", "2025-03-10", "--before", "09:30:00",
                       "--hours", "5", "--dry-run")
    assert code == 0 and f"WOULD RENAME: {NAMES[1]} -> {n('2025-03-10T13:00:00')}" in out
    assert contents(folder) == before and not (folder / config.JOURNAL_FILE).exists()
    assert run(capsys, "--folders", str(folder), "--date", "2025-03-10", "--before", "09:30:00", "--hours", "5")[0] == 0
    assert contents(folder) != before
    assert run(capsys, "--folders", str(folder), "--undo")[0] == 0
    assert contents(folder) == before


@pytest.mark.parametrize("argv, message", [
    (["--date", "2025-02-29", "--hours", "1"], "invalid date"),
    (["--from", "2025-03-12", "--to", "2025-03-10", "--hours", "1"], "before start date"),
    (["--date", "2025-03-10", "--hours", "one"], "hours must be a number"),
    (["--date", "2025-03-10", "--after", "25:00:00", "--hours", "1"], "invalid time"),
    (["--date", "2025-03-10", "--after", "17:00:00", "--before", "09:00:00", "--hours", "1"], "match no time"),
    (["--date", "2025-03-10", "--from", "2025-03-10", "--hours", "1"], "either --date or --from"),
    (["--date", "2025-03-10"], "missing value for --hours"),
    (["--hours", "1"], "missing value for --from"),
])
def test_bad_input_exits_2(tmp_path, capsys, argv, message):
    folder = fill(tmp_path / "f", NAMES[:1])
    code, _out, err = run(capsys, "--folders", str(folder), *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_missing_folder_exits_2(tmp_path, capsys):
    code, _out, err = run(capsys, "--folders", str(tmp_path / "nope"), "--date", "2025-03-10", "--hours", "1")
    assert code == 2 and "folder not found" in err


def test_interactive_asks_for_what_is_missing(tmp_path, capsys, monkeypatch):
    folder = fill(tmp_path / "f", NAMES)
    monkeypatch.setenv("DISCORDPICEXTRACT_INTERACTIVE", "1")
    monkeypatch.setattr(sys, "stdin", io.StringIO("2025-03-32\n2025-03-11\n2025-03-10\n2025-03-11\nlots\n-0.5\nyes\n"))
    code, out, err = run(capsys, "--folders", str(folder))
    assert code == 0
    assert "invalid date '2025-03-32'" in err and "hours must be a number" in err  # questions on stderr
    assert "end date 2025-03-10 is before start date 2025-03-11" in err  # asked again
    assert "From date (yyyy-mm-dd): " in err and "From date" not in out
    assert (folder / n("2025-03-11T16:00:00")).exists()


def test_subprocess_run(tmp_path):
    fill(tmp_path / "f", NAMES)
    proc = subprocess.run([sys.executable, str(ROOT / "adjust_specific_timestamp.py"), "--folders", "f",
                           "--date", "2025-03-09", "--hours", "1", "-v"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert f"RENAMED: {NAMES[0]} -> {n('2025-03-10T00:30:00')}" in proc.stdout


def test_undo_reverts_the_last_run_only_even_where_it_renamed_nothing(tmp_path, capsys):
    # A run over all folders, then a targeted fix that matches nothing in the
    # third folder: --undo must revert the fix only, not the third folder's
    # earlier batch; the next --undo reverts the first run everywhere.
    folders = [fill(tmp_path / name, NAMES[: 6 - i]) for i, name in enumerate("abc")]
    original = [contents(f) for f in folders]
    common = ["--folders", *map(str, folders)]
    assert run(capsys, *common, "--from", "2025-03-09", "--to", "2025-03-12", "--hours", "1")[0] == 0
    after_first = [contents(f) for f in folders]
    code, _out, _ = run(capsys, *common, "--date", "2025-03-12", "--hours", "2")  # only a has a file dated 03-12
    assert code == 0 and contents(folders[0]) != after_first[0]
    assert [contents(f) for f in folders[1:]] == after_first[1:]
    code, out, _ = run(capsys, *common, "--undo")
    assert code == 0 and out.count("Nothing to do now") == 2
    assert [contents(f) for f in folders] == after_first
    assert run(capsys, *common, "--undo")[0] == 0
    assert [contents(f) for f in folders] == original
