"""quality_check_timestamps.py through main(argv), on real images."""
import io
import os
import subprocess
import sys
from datetime import datetime, timedelta

import pytest
from helpers import ROOT, contents, fill, n
from PIL import Image

import config
import quality_check_timestamps as qc
from discordpicextract import naming
from discordpicextract.archive import DownloadArchive
from discordpicextract.market import to_market


def run(capsys, *argv):
    code = qc.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def shifted_stretch(days, start="2025-03-03", bad=range(5, 13), also_bad=range(20, 25)):
    """One image a day at 10:xx; on the `bad` days 5 hours late (15:xx -> 15
    is inside, so use 14+5=19 for a clear miss)."""
    first = datetime.fromisoformat(start)
    names = []
    for i in range(days):
        day = first + timedelta(days=i)
        hour = 19 if i in bad or i in also_bad else 10
        names.append(naming.format_name(day.replace(hour=hour, minute=i % 60), "img.png"))
    return names


def test_boundaries_both_ends_inside(tmp_path, capsys):
    names = [n("2025-06-02T09:29:59", "a.png"), n("2025-06-02T09:30:00", "b.png"),
             n("2025-06-02T16:00:00", "c.png"), n("2025-06-02T16:00:01", "d.png")]
    folder = fill(tmp_path / "f", names)
    code, out, _ = run(capsys, "--folder", str(folder), "--plot", str(tmp_path / "p.png"))
    assert code == 0
    assert f"{names[0]} (time: 09:29:59)" in out
    assert f"{names[3]} (time: 16:00:01)" in out
    assert names[1] not in out and names[2] not in out
    assert "Total: 2 file(s) outside trading hours" in out
    assert "Total: 1 unique date(s)" in out


@pytest.mark.parametrize("name_stamp, outside, market", [
    ("2025-03-07T14:29:59", True, "09:29:59"),   # EST (UTC-5), before the March change
    ("2025-03-07T14:30:00", False, "09:30:00"),
    ("2025-03-10T13:29:59", True, "09:29:59"),   # EDT (UTC-4), after it
    ("2025-03-10T13:30:00", False, "09:30:00"),
    ("2025-03-10T14:29:59", False, "10:29:59"),  # would be outside if read as EST
    ("2025-10-31T20:00:01", True, "16:00:01"),   # EDT, before the November change
    ("2025-11-03T21:00:00", False, "16:00:00"),  # EST, after it
    ("2025-11-03T20:59:59", False, "15:59:59"),
    ("2025-11-03T14:29:59", True, "09:29:59"),
])
def test_names_in_another_zone_are_converted_across_dst(tmp_path, monkeypatch, name_stamp, outside, market):
    monkeypatch.setattr(config, "TIMEZONE", "UTC")
    folder = fill(tmp_path / "f", [n(name_stamp)])
    result = qc.check_folder(folder)
    assert result.outside_count == int(outside)
    assert [item.market_time.strftime("%H:%M:%S") for item in result.shown] == ([market] if outside else [])
    assert to_market(datetime.fromisoformat(name_stamp)).strftime("%H:%M:%S") == market


def test_nonexistent_and_ambiguous_local_times_are_deterministic(monkeypatch):
    monkeypatch.setattr(config, "TIMEZONE", "America/Los_Angeles")
    # 02:30 does not exist on 2025-03-09 in LA: read with the offset before the change (PST)
    assert to_market(datetime(2025, 3, 9, 2, 30)) == datetime(2025, 3, 9, 6, 30)
    # 01:30 happens twice on 2025-11-02 in LA: the first occurrence (PDT, 08:30 UTC,
    # when New York is already back on EST)
    assert to_market(datetime(2025, 11, 2, 1, 30)) == datetime(2025, 11, 2, 3, 30)


def test_report_sections_and_counts(tmp_path, capsys):
    names = shifted_stretch(30)
    folder = fill(tmp_path / "f", names)
    plot = tmp_path / "plots" / "dist.png"
    code, out, _ = run(capsys, "--folder", str(folder), "--plot", str(plot))
    assert code == 0
    bad = [names[i] for i in list(range(5, 13)) + list(range(20, 25))]
    assert "Displaying first 5 and last 5 of 13 file(s) outside trading hours:" in out
    assert "... (3 files omitted) ..." in out
    first_block = out.split("First 5 files:")[1].split("...")[0]
    assert [line.split()[0] for line in first_block.strip().splitlines()] == bad[:5]
    last_block = out.split("Last 5 files:")[1].split("-----")[0]
    assert [line.split()[0] for line in last_block.strip().splitlines()] == bad[-5:]
    assert "Dates when outside trading hours occurred (13 unique date(s)):" in out
    assert "Missing dates between first (2025-03-08) and last (2025-03-27)" in out
    assert "Found 7 date(s) with files but no outside trading hour timestamps:" in out
    assert "  2025-03-16\n" in out and "  2025-03-22\n" in out
    assert "MULTIPLE periods" in out
    assert "QUALITY CHECK REMINDER" in out
    assert "around 2025-03-05 to 2025-03-08" in out and "around 2025-03-27 to 2025-03-30" in out
    assert "  19:00 - 13 file(s)" in out
    assert f"Saved time-of-day distribution plot to: {plot}" in out
    assert "Total: 1 hour bucket(s)" in out and "Total: 7 missing date(s) in the period range" in out
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.size[0] > 100
    mask = os.umask(0o022)
    os.umask(mask)
    assert plot.stat().st_mode & 0o777 == 0o666 & ~mask  # readable like any file the user makes
    assert not [p for p in plot.parent.iterdir() if p.name != "dist.png"]  # no temp left


def test_one_continuous_period_and_all_within_hours(tmp_path, capsys):
    folder = fill(tmp_path / "f", shifted_stretch(10, bad=range(3, 6), also_bad=()))
    code, out, _ = run(capsys, "--folder", str(folder), "--plot", str(tmp_path / "p.png"))
    assert code == 0, out  # files outside hours are a finding, not a failure
    assert "ONE continuous period" in out and "MULTIPLE" not in out
    assert "Displaying all 3 file(s)" in out
    clean = fill(tmp_path / "clean", shifted_stretch(5, bad=(), also_bad=()))
    code, out, _ = run(capsys, "--folder", str(clean), "--plot", str(tmp_path / "q.png"))
    assert code == 0 and "All 5 file(s) are within trading hours. No plot written." in out
    assert not (tmp_path / "q.png").exists()


def test_lead_call_checks_only_and_prints_report(tmp_path, capsys):
    folders = [fill(tmp_path / name, shifted_stretch(15)) for name in ("a", "b", "c")]
    before = [contents(f) for f in folders]
    plot = tmp_path / "demo.png"
    code, out, _ = run(capsys, "--folder", str(folders[0]), "--folders", *map(str, folders),
                       "--no-adjust", "--plot", str(plot))
    assert code == 0 and "Quality Check: Timestamps Outside Trading Hours" in out
    assert "Timestamp Adjustment" not in out and plot.exists()
    assert [contents(f) for f in folders] == before


def test_without_terminal_and_flags_it_only_checks(tmp_path, capsys):
    folder = fill(tmp_path / "f", shifted_stretch(15))
    code, out, _ = run(capsys, "--folder", str(folder), "--folders", str(folder))
    assert code == 0 and "Timestamp Adjustment" not in out
    assert (tmp_path / config.PLOT_FILE).exists()  # default plot path, cwd is tmp_path


def test_adjust_flags_fix_all_folders_and_keep_the_archive(tmp_path, capsys):
    names = shifted_stretch(30)
    folders = [fill(tmp_path / name, names[: 30 - 7 * i]) for i, name in enumerate("abc")]
    with DownloadArchive(folders[0]) as archive:
        archive.add("msg1:att1", 1, names[6], 100, "sha")
    before = [sorted(contents(f).values()) for f in folders]
    code, out, _ = run(capsys, "--folder", str(folders[0]), "--folders", *map(str, folders),
                       "--plot", str(tmp_path / "p.png"),
                       "--adjust", "2025-03-08:2025-03-15:-5", "--adjust", "2025-03-23:2025-03-27:-5")
    assert code == 0, out
    assert f"  {folders[0]}: 8 renamed, 0 skipped (22 not in the period)" in out
    assert f"  {folders[2]}: 8 renamed, 0 skipped (8 not in the period)" in out
    assert "Period 1 summary: 24 files renamed across all folders" in out
    assert "Period 2 summary: 8 files renamed across all folders" in out  # c ends before period 2
    assert "Post-Adjustment Quality Check" in out
    assert out.count("All files are within trading hours") == 3
    assert "Total files outside trading hours across all folders: 0" in out
    assert [sorted(contents(f).values()) for f in folders] == before
    with DownloadArchive(folders[0]) as archive:
        assert archive.filename_of("msg1:att1") == names[6].replace("_19-", "_14-")
    # --undo puts the last period back in the folders it renamed in; c, where
    # period 2 renamed nothing, keeps period 1 until the next --undo
    adjusted_c = contents(folders[2])
    code, out, _ = run(capsys, "--folders", *map(str, folders), "--undo")
    assert code == 0 and (folders[0] / names[20]).exists() and not (folders[0] / names[6]).exists()
    assert contents(folders[2]) == adjusted_c and "Nothing to do now" in out
    code, out, _ = run(capsys, "--folders", *map(str, folders), "--undo")
    assert code == 0 and [sorted(contents(f)) for f in folders] == [sorted(names[: 30 - 7 * i]) for i in range(3)]


def test_periods_never_shift_a_file_twice_and_roll_over_midnight(tmp_path, capsys):
    names = [n("2025-03-10T02:00:00", "x.png"), n("2025-03-09T19:00:00", "y.png")]
    folder = fill(tmp_path / "f", names)
    before = contents(folder)
    code, out, _ = run(capsys, "--folder", str(folder), "--folders", str(folder), "--plot", str(tmp_path / "p.png"),
                       "--adjust", "2025-03-10:2025-03-10:-5", "--adjust", "2025-03-09:2025-03-09:-5")
    assert code == 0, out
    assert "Period 1 summary: 1 files renamed" in out and "Period 2 summary: 1 files renamed" in out
    after = contents(folder)
    # x moves to 2025-03-09 21:00 in period 1 and is not shifted again by period 2
    assert after[n("2025-03-09T21:00:00", "x.png")] == before[names[0]]
    assert after[n("2025-03-09T14:00:00", "y.png")] == before[names[1]]


def test_interactive_dialogue_reasks_bad_answers(tmp_path, capsys, monkeypatch):
    folders = [fill(tmp_path / name, shifted_stretch(30)) for name in ("a", "b", "c")]
    answers = "\n".join(["maybe", "Yes", "zero", "2",
                         "2025-03-08", "2025-02-30", "2025-03-07", "2025-03-15", "five", "-5", "sure", "yes",
                         "2025-03-23", "2025-03-27", "-5", "yes"]) + "\n"
    monkeypatch.setenv("DISCORDPICEXTRACT_INTERACTIVE", "1")
    monkeypatch.setattr(sys, "stdin", io.StringIO(answers))
    code, out, err = run(capsys, "--folder", str(folders[0]), "--folders", *map(str, folders),
                         "--plot", str(tmp_path / "p.png"))
    assert code == 0, out
    # every question and complaint on stderr: `> report.txt` never hides one
    assert "please answer Yes or No" in err
    assert "enter a whole number of periods" in err
    assert "invalid date '2025-02-30'" in err
    assert "end date 2025-03-07 is before start date 2025-03-08" in err
    assert "hours must be a number" in err
    assert "Do you want to adjust" not in out and "--- Period 1 ---" not in out
    assert "Period 1 summary: 24 files renamed across all folders" in out
    assert "Period 2 summary: 15 files renamed across all folders" in out
    assert "Total files outside trading hours across all folders: 0" in out


def test_dialogue_previews_each_period_and_asks_and_prints_the_exact_undo(tmp_path, capsys, monkeypatch):
    names = shifted_stretch(30)
    folders = [fill(tmp_path / name, names) for name in ("a", "b")]
    before = [contents(f) for f in folders]
    answers = "yes\n2\n2025-03-08\n2025-03-15\n-5\nno\n2025-03-23\n2025-03-27\n-5\nyes\n"
    monkeypatch.setenv("DISCORDPICEXTRACT_INTERACTIVE", "1")
    monkeypatch.setattr(sys, "stdin", io.StringIO(answers))
    code, out, err = run(capsys, "--folder", str(folders[0]), "--folders", *map(str, folders),
                         "--plot", str(tmp_path / "p.png"))
    assert code == 0, out + err
    # the preview comes before each question: the count, the first and last renames per folder
    preview = err.split("Period 1 would rename 16 file(s):")[1].split("Apply period 1?")[0]
    assert f"  {folders[0]}: 8 file(s) to rename" in preview and f"  {folders[1]}: 8 file(s) to rename" in preview
    assert f"    {names[5]} -> {names[5].replace('_19-', '_14-')}" in preview   # first
    assert f"    {names[12]} -> {names[12].replace('_19-', '_14-')}" in preview  # last
    assert "... (2 more) ..." in preview
    assert "Period 1 skipped: nothing renamed." in out     # answered no: period 1 untouched
    assert (folders[0] / names[5]).exists() and not (folders[0] / names[20]).exists()
    undo = f"python quality_check_timestamps.py --folders {folders[0]} {folders[1]} --undo"
    assert f"Period 2 was applied; --undo reverts it:\n  {undo}" in out
    # the printed command, run as printed, undoes it in every folder
    assert qc.main(undo.split()[2:]) == 0
    assert [contents(f) for f in folders] == before


def test_interactive_no_changes_nothing(tmp_path, capsys, monkeypatch):
    folder = fill(tmp_path / "f", shifted_stretch(15))
    before = contents(folder)
    monkeypatch.setenv("DISCORDPICEXTRACT_INTERACTIVE", "1")
    monkeypatch.setattr(sys, "stdin", io.StringIO("no\n"))
    code, out, _ = run(capsys, "--folder", str(folder), "--folders", str(folder), "--plot", str(tmp_path / "p.png"))
    assert code == 0 and "No adjustment made." in out and contents(folder) == before


def test_dry_run_prints_the_plan_and_changes_nothing(tmp_path, capsys):
    folder = fill(tmp_path / "f", shifted_stretch(15))
    before = contents(folder)
    code, out, _ = run(capsys, "--folder", str(folder), "--folders", str(folder), "--plot", str(tmp_path / "p.png"),
                       "--adjust", "2025-03-08:2025-03-15:-5", "--dry-run")
    assert code == 0 and out.count("WOULD RENAME:") == 8
    assert contents(folder) == before and not (folder / config.JOURNAL_FILE).exists()


@pytest.mark.parametrize("argv, message", [
    (["--adjust", "2025-02-30:2025-03-01:-5"], "invalid date"),
    (["--adjust", "2025-03-10:2025-03-01:-5"], "before start date"),
    (["--adjust", "2025-03-01:2025-03-10:five"], "hours must be a number"),
    (["--adjust", "2025-03-01:2025-03-10"], "START:END:HOURS"),
    (["--adjust", "2025-03-01:2025-03-10:-5", "--no-adjust"], "cannot be used together"),
    (["--adjust", "2025-03-01:2025-03-10:-5", "--folders", "missing"], "folder not found: missing"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, message):
    folder = fill(tmp_path / "f", shifted_stretch(15))
    code, _out, err = run(capsys, "--folder", str(folder), "--plot", str(tmp_path / "p.png"), *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_missing_check_folder_and_unparsed_names(tmp_path, capsys):
    code, _out, err = run(capsys, "--folder", str(tmp_path / "nope"))
    assert code == 2 and "folder not found" in err
    folder = fill(tmp_path / "f", [*shifted_stretch(3, bad=(), also_bad=()), "screenshot.png"])
    code, out, _ = run(capsys, "--folder", str(folder))
    assert code == 1 and "UNPARSED: screenshot.png" in out and (folder / "screenshot.png").exists()


def test_subprocess_run(tmp_path):
    [fill(tmp_path / name, shifted_stretch(15)) for name in ("a", "b", "c")]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "quality_check_timestamps.py"), "--folder", "a", "--folders", "a", "b", "c",
         "--adjust", "2025-03-08:2025-03-15:-5"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert proc.returncode == 0, proc.stderr
    assert "Period 1 summary: 24 files renamed across all folders" in proc.stdout
    assert (tmp_path / config.PLOT_FILE).exists()


def test_unfinished_batch_refuses_adjustment_until_recovered(tmp_path, capsys):
    from discordpicextract.renames.apply import apply_plan
    from discordpicextract.renames.plan import plan_folder
    from discordpicextract.renames.values import shift_by

    folder = fill(tmp_path / "f", shifted_stretch(15))
    before = contents(folder)
    plan = plan_folder(folder, shift_by(1))
    apply_plan(folder, plan, stop_after=3)
    common = ["--folder", str(folder), "--folders", str(folder), "--plot", str(tmp_path / "p.png")]
    code, _out, err = run(capsys, *common, "--adjust", "2025-03-08:2025-03-15:-5")
    assert code == 2 and "unfinished rename batch" in err and "--recover" in err
    code, out, _ = run(capsys, *common, "--recover", "revert", "--dry-run")
    assert code == 0 and "WOULD RENAME" in out and contents(folder) != before
    code, out, _ = run(capsys, *common, "--recover", "revert")
    assert code == 0 and contents(folder) == before
    code, out, _ = run(capsys, *common, "--adjust", "2025-03-08:2025-03-15:-5")
    assert code == 0 and "Period 1 summary: 8 files renamed" in out


def test_dry_run_of_overlapping_periods_matches_the_real_run(tmp_path, capsys):
    folder = fill(tmp_path / "f", shifted_stretch(30))
    common = ["--folder", str(folder), "--folders", str(folder), "--plot", str(tmp_path / "p.png"),
              "--adjust", "2025-03-08:2025-03-15:-5", "--adjust", "2025-03-10:2025-03-27:-5"]
    dry_code, dry, _ = run(capsys, *common, "--dry-run")
    code, real, _ = run(capsys, *common)
    assert dry_code == code == 0
    summaries = [line for line in real.splitlines() if "summary:" in line]
    assert summaries == ["Period 1 summary: 8 files renamed across all folders",
                         "Period 2 summary: 12 files renamed across all folders"]
    assert [line.replace("would be renamed", "renamed") for line in dry.splitlines() if "summary:" in line] == summaries


def test_end_of_input_after_a_period_reports_what_was_applied(tmp_path, capsys, monkeypatch):
    folder = fill(tmp_path / "f", shifted_stretch(30))
    monkeypatch.setenv("DISCORDPICEXTRACT_INTERACTIVE", "1")
    monkeypatch.setattr(sys, "stdin", io.StringIO("yes\n2\n2025-03-08\n2025-03-15\n-5\nyes\n2025-03-23\n"))
    code, out, err = run(capsys, "--folder", str(folder), "--folders", str(folder), "--plot", str(tmp_path / "p.png"))
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code == 2 and len(errors) == 1 and "end of input" in errors[0]
    assert "Stopped before period 2" in out and "Period 1 was applied; --undo reverts it:" in out
    assert f"python quality_check_timestamps.py --folders {folder} --undo" in out
    assert "Post-Adjustment Summary" in out and "Files outside trading hours: 5" in out
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # end of input at the first question
    code, out, err = run(capsys, "--folder", str(folder), "--folders", str(folder), "--plot", str(tmp_path / "p.png"))
    assert code == 2 and "end of input" in err and "Post-Adjustment" not in out


def test_plot_replaces_only_an_earlier_plot_never_another_file(tmp_path, capsys):
    folder = fill(tmp_path / "f", shifted_stretch(8))
    plot = tmp_path / "dist.png"
    assert run(capsys, "--folder", str(folder), "--plot", str(plot), "--no-adjust")[0] == 0
    first = plot.read_bytes()
    # our own earlier plot is replaced (the same data gives the same picture)
    code, out, _ = run(capsys, "--folder", str(folder), "--plot", str(plot), "--no-adjust")
    assert code == 0 and "Saved time-of-day distribution plot" in out and plot.read_bytes() == first

    chart = next(p for p in folder.iterdir() if p.suffix == ".png")
    log = tmp_path / "q1.log"
    log.write_text("keep me\n")
    for target in (chart, log):
        before = target.read_bytes()
        code, out, _ = run(capsys, "--folder", str(folder), "--plot", str(target), "--no-adjust")
        assert code == 1 and "not a plot written by this tool" in out
        assert target.read_bytes() == before


def test_many_files_outside_hours_show_the_first_and_last_five_by_time(tmp_path, capsys):
    # more outside-hours files than the check holds at once (it keeps the ends only)
    folder = tmp_path / "f"
    folder.mkdir()
    stamps = [datetime(2025, 3, 3 + day, 17) + timedelta(seconds=7 * i) for day in range(3) for i in range(200)]
    names = [naming.format_name(stamp, f"c{i % 4}.png") for i, stamp in enumerate(stamps)]
    for name in reversed(names):
        (folder / name).write_bytes(b"")
    code, out, _ = run(capsys, "--folder", str(folder), "--plot", str(tmp_path / "p.png"), "--no-adjust")
    assert code == 0
    assert "Displaying first 5 and last 5 of 600 file(s) outside trading hours:" in out
    first_block = out.split("First 5 files:")[1].split("...")[0]
    assert [line.split()[0] for line in first_block.strip().splitlines()] == names[:5]
    last_block = out.split("Last 5 files:")[1].split("-----")[0]
    assert [line.split()[0] for line in last_block.strip().splitlines()] == names[-5:]
    assert "Total: 600 file(s) outside trading hours" in out and "  17:00 - 600 file(s)" in out


def test_verbose_names_every_file_outside_hours_and_each_periods_evidence_on_stderr(tmp_path, capsys):
    names = shifted_stretch(30)
    folder = fill(tmp_path / "f", names)
    argv = ["--folder", str(folder), "--no-adjust", "--plot", str(tmp_path / "p.png")]
    code, out, err = run(capsys, *argv)
    assert "debug:" not in err

    code_v, out_v, err_v = run(capsys, *argv, "-v")

    assert (code_v, out_v) == (code, out)   # the report is unchanged
    outside = [line for line in err_v.splitlines() if ": outside trading hours: " in line]
    assert len(outside) == 13 > 2 * qc.SHOW_FIRST_LAST, err_v   # every one, not the first and last few
    assert all(line.startswith(f"debug: {folder}: outside trading hours: ") for line in outside)
    assert "debug: period 2025-03-08..2025-03-15, names off by +9:00:00: 8 date(s)" in err_v
    assert "debug:   2025-03-08: 1 file(s), mean time 19:05, fits +4:00:00..+9:00:00" in err_v
    assert "debug: period 2025-03-23..2025-03-27, names off by +9:00:00: 5 date(s)" in err_v
    code_q, out_q, err_q = run(capsys, *argv, "-q")
    assert "debug:" not in err_q and "Quality Check" not in out_q
