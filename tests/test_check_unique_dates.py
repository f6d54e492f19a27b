"""check_unique_dates.py on real image files written with Pillow."""
import subprocess
import sys

import pytest
from helpers import ROOT, write_image

import check_unique_dates as check
import config


def run(capsys, *args):
    code = check.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def fill(folder, dates):
    for index, day in enumerate(dates):
        write_image(folder / f"{day}_10-00-00_chart.png", seed=index)


def test_matching_coverage_exit_0_and_reference_shape(tmp_path, capsys):
    for folder in ("a", "b"):
        fill(tmp_path / folder, ["2025-02-14", "2025-02-18"])
    write_image(tmp_path / "a" / "2025-02-14_11-00-00_more.png", seed=7)

    code, out, _ = run(capsys, "--folders", "a", "b")

    assert code == 0
    assert out.startswith("=" * 70 + "\nUnique Dates Analysis\n" + "=" * 70 + "\n\nAnalyzing: a\n"
                          "  Found 2 unique dates\n  Date range: 2025-02-14 to 2025-02-18\n")
    assert f"  {'a':<30}:    2 unique dates\n  {'b':<30}:    2 unique dates\n" in out
    assert "Date coverage matches: all 2 folders have the same 2 dates." in out


def test_differences_listed_per_folder_exit_1(tmp_path, capsys):
    fill(tmp_path / "raw", ["2025-02-14", "2025-02-18", "2025-02-19"])
    fill(tmp_path / "clean", ["2025-02-14", "2025-02-19", "2025-02-20"])
    fill(tmp_path / "daily", ["2025-02-14"])

    code, out, _ = run(capsys, "--folders", "raw", "clean", "daily")

    assert code == 1
    assert ("  raw lacks 1 date(s) that another folder has:\n"
            "    2025-02-20 (in clean)\n"
            "  clean lacks 1 date(s) that another folder has:\n"
            "    2025-02-18 (in raw)\n"
            "  daily lacks 3 date(s) that another folder has:\n"
            "    2025-02-18 (in raw)\n"
            "    2025-02-19 (in raw, clean)\n"
            "    2025-02-20 (in clean)\n") in out


def test_trading_days_lists_uncovered_nyse_sessions(tmp_path, capsys):
    # 2025-02-14 (Fri) .. 2025-02-21 (Fri): 2025-02-17 is Presidents' Day
    # (NYSE closed), the weekend is no session; 02-19 and 02-20 are missing.
    for folder in ("a", "b"):
        fill(tmp_path / folder, ["2025-02-14", "2025-02-18", "2025-02-21"])

    code, out, _ = run(capsys, "--folders", "a", "b", "--trading-days")

    assert code == 1
    assert ("NYSE trading sessions from 2025-02-14 to 2025-02-21: 5\n"
            "  Sessions with no image in any folder: 2\n"
            "    2025-02-19 (Wed)\n    2025-02-20 (Thu)\n") in out


def test_trading_days_complete_is_exit_0_and_off_days_listed(tmp_path, capsys):
    # 07-04 is Independence Day; an image on it (or on a Saturday) is shown
    # as a date that is no session, without failing the run.
    fill(tmp_path / "a", ["2025-07-02", "2025-07-03", "2025-07-04", "2025-07-05", "2025-07-07"])
    code, out, _ = run(capsys, "--folders", "a", "--trading-days")
    assert code == 0
    assert ("NYSE trading sessions from 2025-07-02 to 2025-07-07: 3\n"
            "  Every session has an image in at least one folder.\n"
            "  Dates with images that are not NYSE sessions: 2\n"
            "    2025-07-04 (Fri)\n    2025-07-05 (Sat)\n") in out


def test_missing_folder_exit_2_one_line(tmp_path, capsys):
    fill(tmp_path / "a", ["2025-02-14"])
    code, out, err = run(capsys, "--folders", "a", "gone")
    assert code == 2 and err == "error: folder not found: gone\n" and out == ""


def test_default_folders_are_the_pipeline_folders(tmp_path, capsys):
    for folder in config.PIPELINE_FOLDERS:
        fill(tmp_path / folder, ["2025-02-14"])
    code, out, _ = run(capsys)
    assert code == 0
    assert [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("Analyzing")] \
        == list(config.PIPELINE_FOLDERS)


def test_unparsed_names_reported_and_empty_folder(tmp_path, capsys):
    fill(tmp_path / "a", ["2025-02-14"])
    write_image(tmp_path / "a" / "IMG_0001.png", seed=3)
    (tmp_path / "empty").mkdir()

    code, out, err = run(capsys, "--folders", "a", "empty")

    assert code == 1
    assert "warning: a: skipped IMG_0001.png" in err
    assert "Skipped 1 file(s) whose name does not parse" in out
    assert "Analyzing: empty\n  Found 0 unique dates\n  Date range: (no dated images)" in out
    assert "  empty lacks 1 date(s) that another folder has:\n    2025-02-14 (in a)" in out


def test_subprocess_run(tmp_path):
    fill(tmp_path / "x", ["2025-02-14"])
    fill(tmp_path / "y", ["2025-02-18"])
    done = subprocess.run([sys.executable, str(ROOT / "check_unique_dates.py"), "--folders", "x", "y"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "Date coverage differs:" in done.stdout and "Traceback" not in done.stderr


def test_trading_days_knows_special_closures(tmp_path, capsys):
    # 2025-01-09: NYSE closed for a national day of mourning (no fixed
    # holiday); 2025-04-18: Good Friday (no federal holiday).
    fill(tmp_path / "jan", ["2025-01-08", "2025-01-10"])
    fill(tmp_path / "apr", ["2025-04-17", "2025-04-21"])
    for folder, first, last in (("jan", "2025-01-08", "2025-01-10"), ("apr", "2025-04-17", "2025-04-21")):
        code, out, _ = run(capsys, "--folders", folder, "--trading-days")
        assert code == 0
        assert (f"NYSE trading sessions from {first} to {last}: 2\n"
                "  Every session has an image in at least one folder.\n") in out


def test_unreadable_folder_is_exit_2_one_line(tmp_path):
    from test_deduplicate import without_root_file_powers

    prefix = without_root_file_powers()
    if prefix is None:
        pytest.skip("no way to make a folder unreadable here")
    fill(tmp_path / "a", ["2025-02-14"])
    fill(tmp_path / "b", ["2025-02-14"])
    (tmp_path / "b").chmod(0)
    try:
        done = subprocess.run([*prefix, sys.executable, str(ROOT / "check_unique_dates.py"), "--folders", "a", "b"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)
    finally:
        (tmp_path / "b").chmod(0o755)
    assert done.returncode == 2
    assert done.stderr == "error: cannot read folder b: Permission denied\n"


def test_verbose_says_what_each_folder_listed_skipped_and_misses_on_stderr(tmp_path, capsys):
    fill(tmp_path / "raw", ["2025-02-14", "2025-02-18", "2025-02-19"])
    fill(tmp_path / "clean", ["2025-02-14", "2025-02-19"])
    write_image(tmp_path / "raw" / "not-a-date.png", seed=9)
    argv = ["--folders", "raw", "clean", "--trading-days"]
    code, out, err = run(capsys, *argv)
    assert "debug:" not in err

    code_v, out_v, err_v = run(capsys, *argv, "-v")

    assert (code_v, out_v) == (code, out) == (1, out)   # the report is unchanged
    assert ("debug: raw: listed 3 image(s) on 3 date(s) (2025-02-14..2025-02-19), names read in "
            f"{config.TIMEZONE}; skipped 1 unparsed name(s), 0 not readable file(s)") in err_v
    assert "debug: clean misses 1 date(s) another folder has: 2025-02-18" in err_v
    assert "debug: raw misses 0 date(s) another folder has" in err_v
    assert "debug: clean has no image for 1 of 3 NYSE session(s): 2025-02-18" in err_v
    code_q, out_q, err_q = run(capsys, *argv, "-q")
    assert code_q == 1 and "debug:" not in err_q and "Unique Dates Analysis" not in out_q
