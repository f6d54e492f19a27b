"""Timestamps from the truth, through the scripts' main(argv): downloads from
the emulator, real image files in tmp_path, verify against post times, the
recorded zone read by every step, suggested periods and the timeline plot."""
import re
import shlex
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from helpers import contents, fill, n
from PIL import Image

import adjust_specific_timestamp
import adjust_timestamps as adjust
import check_unique_dates
import config
import deduplicate_images
import discord_downloader
import extract_one_per_day
import quality_check_timestamps as qc
from discordpicextract import naming
from discordpicextract.timestamps import plot, zone

NY = ZoneInfo("America/New_York")
UTC = timezone.utc
DAYS_BACK = "900"  # the posts are in 2025: the window reaches them


def ny(stamp):
    return datetime.fromisoformat(stamp).replace(tzinfo=NY)


def download(capsys, world, folder, *extra):
    code = discord_downloader.main(["--channel", world.channel["id"], "--days", DAYS_BACK, "--output", str(folder),
                                    "--no-progress", *map(str, extra)])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    return folder


def run(capsys, script, *argv):
    code = script.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --- verify -------------------------------------------------------------------------

WEEK = ["2025-06-02", "2025-06-03", "2025-06-04", "2025-06-05", "2025-06-06", "2025-06-09", "2025-06-10"]


def test_verify_finds_a_minus_one_hour_period_including_its_quiet_day(world, capsys, tmp_path):
    for i, day in enumerate(WEEK):
        # 2025-06-09 is quiet: no post in 09:30-10:30, the hour a -1 h shift moves out of hours
        clock = ("11:00:00", "12:30:00", "14:00:00") if day == "2025-06-09" else ("09:45:00", "12:30:00", "15:30:00")
        for j, moment in enumerate(clock):
            world.post(ny(f"{day}T{moment}"), f"d{i}c{j}.png")
    folder = download(capsys, world, tmp_path / "dl")
    # names of 06-03..06-09 one hour early: the old tool's mistake, renamed through
    # the engine so the archive follows the names (as it would after any of our renames)
    code, out, _ = run(capsys, qc, "--folder", folder, "--folders", folder, "--adjust", "2025-06-03:2025-06-09:-1",
                       "--plot", tmp_path / "p.png")
    assert code == 0, out
    # the estimate alone cannot tell the quiet day: it names it as an edge
    code, out, _ = run(capsys, qc, "--folder", folder, "--no-adjust", "--plot", tmp_path / "p.png")
    assert code == 0
    assert "2025-06-03..2025-06-06: 4 date(s), 12 file(s), names off by -1:00:00 (estimated from the times" in out
    assert "dates beside it that fit it too (check by hand): 2025-06-09" in out
    # verify knows: 15 files on five dates, the quiet one included
    code, out, _ = run(capsys, qc, "--folder", folder, "--verify", "--no-adjust", "--plot", tmp_path / "p.png")
    assert code == 1
    assert "Verified: 21 file(s) (21 by name in the folder's archive or messages.csv, 0 by content)" in out
    assert "  Agree:   6\n  Differ:  15\n  Unknown: 0" in out
    assert "  2025-06-03..2025-06-09: 15 file(s) off by -1:00:00" in out
    # where verify knows, the truth wins over the estimate, and says so
    assert ("2025-06-03..2025-06-09: 5 date(s), 15 file(s), names off by -1:00:00 "
            "(verified against post times: all 5 date(s))") in out
    assert f"python adjust_timestamps.py --folders {folder} --to-post-time" in out
    # --verbose names each file that differs
    code, out, _ = run(capsys, qc, "--folder", folder, "--verify", "--verbose", "--no-adjust", "--plot",
                       tmp_path / "p.png")
    assert out.count(", off by -1:00:00 (via archive)") == 15


def test_verify_counts_unknown_files_and_matches_copies_by_content(world, capsys, tmp_path):
    for i, day in enumerate(WEEK[:3]):
        world.post(ny(f"{day}T10:00:00"), f"a{i}.png")
    folder = download(capsys, world, tmp_path / "dl")
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in naming.list_images(folder).images:  # a copy named five hours late, no archive
        stamp = name.timestamp + timedelta(hours=5)
        (copy / naming.format_name(stamp, name.parsed.original)).write_bytes(name.path.read_bytes())
    fill(copy, [n("2025-06-04T11:00:00", "stranger.png")])
    code, out, _ = run(capsys, qc, "--folder", copy, "--verify", "--no-adjust", "--plot", tmp_path / "p.png")
    assert code == 0 and "Verified: 0 file(s)" in out and "Unknown: 4" in out  # nothing known: never guessed
    code, out, _ = run(capsys, qc, "--folder", copy, "--verify", "--archive", folder, "--no-adjust",
                       "--plot", tmp_path / "p.png")
    assert code == 1
    assert "Verified: 3 file(s) (0 by name in the folder's archive or messages.csv, 3 by content)" in out
    assert "Unknown: 1" in out and "  2025-06-02..2025-06-04: 3 file(s) off by +5:00:00" in out
    assert f"--to-post-time --archive {folder}" in out
    code, _, err = run(capsys, qc, "--folder", copy, "--verify", "--archive", tmp_path / "nowhere")
    assert code == 2 and "--archive: not found" in err
    code, _, err = run(capsys, qc, "--folder", copy, "--archive", folder)
    assert code == 2 and "--archive goes with --verify" in err


# --- the recorded zone --------------------------------------------------------------

def test_a_recorded_zone_is_read_by_every_step(world, capsys, tmp_path):
    # Friday 15:00 in New York is Saturday 03:00 in Shanghai; Tuesday's two posts
    # straddle midnight there (22:00 and 00:30) but are one trading day
    for stamp in ("2025-06-06T15:00:00", "2025-06-09T10:00:00", "2025-06-10T10:00:00", "2025-06-10T12:30:00"):
        world.post(ny(stamp), "chart.png")
    raw = download(capsys, world, tmp_path / "raw", "--timezone", "Asia/Shanghai")
    assert zone.read_zone(raw) == "Asia/Shanghai"
    assert any(name.startswith("2025-06-07_03-00-00") for name in contents(raw))  # a Saturday name
    clean, daily = tmp_path / "clean", tmp_path / "daily"
    assert run(capsys, deduplicate_images, "--source", raw, "--output", clean)[0] == 0
    assert run(capsys, extract_one_per_day, "--source", clean, "--output", daily)[0] == 0
    assert zone.read_zone(clean) == zone.read_zone(daily) == "Asia/Shanghai"
    picks = sorted(name for name in contents(daily) if name.endswith(".png"))
    assert [p[:19] for p in picks] == ["2025-06-07_03-00-00", "2025-06-09_22-00-00", "2025-06-11_00-30-00"]
    code, out, _ = run(capsys, check_unique_dates, "--folders", raw, clean, daily, "--trading-days")
    assert code == 0 and "2025-06-07" not in out and "2025-06-06" in out   # Friday's session, no Saturday
    code, out, _ = run(capsys, qc, "--folder", clean, "--verify", "--archive", raw, "--no-adjust",
                       "--plot", tmp_path / "p.png")
    assert code == 0, out
    assert "names read in Asia/Shanghai" in out and "All 4 file(s) are within trading hours" in out
    assert "  Agree:   4\n  Differ:  0" in out
    # --timezone overrides the record (and then every file looks wrong)
    code, out, _ = run(capsys, qc, "--folder", clean, "--timezone", "America/New_York", "--no-adjust",
                       "--plot", tmp_path / "p.png")
    assert "Total: 4 file(s) outside trading hours" in out
    # a download in another zone into the same folder would mix two zones: refused
    code, _, err = run(capsys, discord_downloader, "--channel", world.channel["id"], "--days", DAYS_BACK,
                       "--output", raw, "--no-progress")
    assert code == 2 and "holds names written in Asia/Shanghai" in err
    # a rename batch over folders recorded in different zones is an error naming them
    other = fill(tmp_path / "other", [n("2025-06-09T10:00:00")])
    before = contents(clean)
    code, _, err = run(capsys, qc, "--folder", clean, "--folders", clean, other, "--adjust", "2025-06-09:2025-06-09:1")
    assert code == 2 and f"{clean} (Asia/Shanghai)" in err and f"{other} ({config.TIMEZONE})" in err
    for script, argv in ((adjust, ["--hours", "1"]),
                         (adjust_specific_timestamp, ["--date", "2025-06-09", "--hours", "1"])):
        code, _, err = run(capsys, script, "--folders", clean, other, *argv)
        assert code == 2 and f"{clean} (Asia/Shanghai)" in err, err
    assert contents(clean) == before


# --- suggested periods and the plot -------------------------------------------------

def _session_day(day, shift=0, clock=("09:40:00", "11:15:00", "13:05:00", "15:50:00")):
    start = datetime.fromisoformat(f"{day}T00:00:00")
    return [naming.format_name(datetime.combine(start.date(), datetime.strptime(c, "%H:%M:%S").time())
                               + timedelta(hours=shift), f"c{k}.png") for k, c in enumerate(clock)]


def _weekdays(first, count):
    day, out = date.fromisoformat(first), []
    while len(out) < count:
        if day.weekday() < 5:
            out.append(day.isoformat())
        day += timedelta(days=1)
    return out


def test_the_suggested_adjust_lines_applied_leave_no_file_outside_hours(tmp_path, capsys):
    days = _weekdays("2025-01-06", 30)
    names = []
    for i, day in enumerate(days):
        if 5 <= i < 10:        # +5 h: the mornings land at 14:40-16:00, inside hours
            names += _session_day(day, 5)
        elif 15 <= i < 20:     # -1 h, with a quiet day inside (no post in the hour that moved)
            names += _session_day(day, -1, ("11:00:00", "12:00:00") if i == 17 else
                                  ("09:40:00", "11:15:00", "13:05:00", "15:50:00"))
        else:
            names += _session_day(day)
    folder = fill(tmp_path / "f", names)
    plot_path = tmp_path / "when.png"
    code, out, _ = run(capsys, qc, "--folder", folder, "--folders", folder, "--no-adjust", "--plot", plot_path)
    assert code == 0
    assert f"{days[5]}..{days[9]}: 5 date(s), 20 file(s), names off by +5:00:00" in out
    assert f"{days[15]}..{days[19]}: 5 date(s), 18 file(s), names off by -1:00:00" in out
    assert f"--adjust {days[5]}:{days[9]}:-5" in out and f"--adjust {days[15]}:{days[19]}:1" in out
    assert "MULTIPLE periods (2," in out
    assert f"Period 1 ({days[5]}..{days[9]}, +5:00:00): starts {days[5]}" in out  # the reminder names the edges
    # the plot: a PNG whose x axis is dates across the folder's range
    with Image.open(plot_path) as image:
        assert image.format == "PNG"
        labels = image.info[plot.AXIS_KEY].split()
    ticks = [date.fromisoformat(label) for label in labels]
    assert len(ticks) >= 3 and ticks[0] <= date.fromisoformat(days[4]) and ticks[-1] >= date.fromisoformat(days[-5])
    # the one command printed, run as printed, leaves no file outside hours
    command = out.split("To apply every suggestion:\n")[1].splitlines()[0].strip()
    argv = [*shlex.split(command)[2:], "--plot", str(plot_path)]
    code, after, _ = run(capsys, qc, *argv)
    assert code == 0, after
    assert "Total files outside trading hours across all folders: 0" in after
    assert f"Saved the after-adjustment plot to: {qc.after_path(plot_path)}" in after
    with Image.open(qc.after_path(plot_path)) as image:
        assert image.format == "PNG" and plot.AXIS_KEY in image.info
    code, check, _ = run(capsys, qc, "--folder", folder, "--no-adjust", "--plot", plot_path)
    assert f"All {len(names)} file(s) are within trading hours" in check and "Periods found" not in check


def test_periods_that_follow_daylight_saving_suggest_from_zone(tmp_path, capsys):
    names = []
    for day in _weekdays("2025-02-24", 25):  # across the March change
        local = datetime.fromisoformat(f"{day}T10:00:00").replace(tzinfo=NY)
        for k, clock in enumerate(("09:35:00", "12:00:00", "15:55:00")):
            moment = datetime.combine(local.date(), datetime.strptime(clock, "%H:%M:%S").time(), NY)
            names.append(naming.format_name(moment.astimezone(UTC).replace(tzinfo=None), f"c{k}.png"))
    folder = fill(tmp_path / "f", names)   # named in UTC, as the old tool did, read as New York
    code, out, _ = run(capsys, qc, "--folder", folder, "--folders", folder, "--no-adjust",
                       "--plot", tmp_path / "p.png")
    assert re.search(r"2025-02-24\.\.2025-03-07: 10 date\(s\), 30 file\(s\), names off by \+5:00:00", out)
    assert re.search(r"2025-03-10\.\.2025-03-28: 15 date\(s\), 45 file\(s\), names off by \+4:00:00", out)
    assert out.count("coincides with a daylight-saving change in America/New_York") == 2
    assert "the names look written in UTC" in out
    assert f"python adjust_timestamps.py --folders {folder} --from-zone UTC" in out


# --- adjust_timestamps: zone conversion and post times ------------------------------

def images(folder):
    """{name: sha256} of the image files (messages.csv and bookkeeping left out)."""
    return {name: digest for name, digest in contents(folder).items() if naming.is_image_name(name)}


EDGES_UTC = ["2025-03-07T15:00:00", "2025-03-09T06:59:59", "2025-03-09T07:00:00",   # the March change
             "2025-11-02T05:30:00", "2025-11-02T06:30:00",                          # 01:30 twice in New York
             "2025-11-02T05:59:59", "2025-11-02T06:00:00", "2025-11-03T15:00:00"]   # and the hour's edges


def test_a_utc_download_converted_from_utc_ends_exactly_as_a_new_york_download(world, capsys, tmp_path):
    for stamp in EDGES_UTC:
        world.post(datetime.fromisoformat(stamp).replace(tzinfo=UTC), "chart.png")
    as_utc = download(capsys, world, tmp_path / "utc", "--timezone", "UTC")
    as_ny = download(capsys, world, tmp_path / "ny")
    assert images(as_utc) != images(as_ny)
    # the fall-back hour: the New York download numbers the second 01:30 like any same-name pair
    assert {n("2025-11-02T01:30:00"), n("2025-11-02T01:30:00", "chart_2.png")} <= set(images(as_ny))
    code, out, _ = run(capsys, adjust, "--folders", as_utc, "--from-zone", "UTC", "--dry-run")
    assert code == 0 and "WOULD RENAME" in out and zone.read_zone(as_utc) == "UTC"
    code, out, _ = run(capsys, adjust, "--folders", as_utc, "--from-zone", "UTC")   # no terminal: the flag says it
    assert code == 0, out
    assert images(as_utc) == images(as_ny)
    assert zone.read_zone(as_utc) == zone.read_zone(as_ny) == "America/New_York"
    assert f"To undo: python adjust_timestamps.py --folders {as_utc} --undo" in out
    # the archive followed: every name is its post time
    code, out, _ = run(capsys, qc, "--folder", as_utc, "--verify", "--no-adjust", "--plot", tmp_path / "p.png")
    assert code == 0 and f"Agree:   {len(EDGES_UTC)}" in out
    # --undo puts back the names and the recorded zone
    assert run(capsys, adjust, "--folders", as_utc, "--undo")[0] == 0
    assert zone.read_zone(as_utc) == "UTC" and images(as_utc) != images(as_ny)
    code, out, _ = run(capsys, qc, "--folder", as_utc, "--verify", "--no-adjust", "--plot", tmp_path / "p.png")
    assert code == 0, out


def test_ambiguous_and_nonexistent_wall_times_are_reported_when_converting(tmp_path, capsys):
    folder = fill(tmp_path / "f", [n("2025-11-02T01:30:00"), n("2025-03-09T02:30:00", "gap.png")])
    code, out, _ = run(capsys, adjust, "--folders", folder, "--from-zone", "America/New_York", "--to-zone", "UTC")
    assert code == 0, out
    assert "happens twice in America/New_York (the clocks went back); read as its first occurrence" in out
    assert "does not exist in America/New_York (the clocks sprang forward); read with the offset before" in out
    assert set(images(folder)) == {n("2025-11-02T05:30:00"), n("2025-03-09T07:30:00", "gap.png")}
    assert zone.read_zone(folder) == "UTC"


def test_to_post_time_through_another_folders_archive_repairs_a_shifted_copy(world, capsys, tmp_path):
    import shutil

    for day in WEEK[:4]:
        world.post(ny(f"{day}T10:00:00"), "a.png")
        world.post(ny(f"{day}T14:00:00"), "b.png")
    world.post(ny("2025-06-05T11:00:00"), "again.png", seed=77)   # the same bytes posted twice
    world.post(ny("2025-06-05T11:01:00"), "again.png", seed=77)
    good = download(capsys, world, tmp_path / "good")
    copy = tmp_path / "copy"
    shutil.copytree(good, copy)
    assert run(capsys, adjust, "--folders", copy, "--hours", "5")[0] == 0   # the names go wrong...
    (copy / config.ARCHIVE_FILE).unlink()                                  # ...and the archive is lost
    (copy / "messages.csv").unlink()
    (copy / config.JOURNAL_FILE).unlink()
    fill(copy, [n("2025-06-04T23:00:00", "stranger.png")])
    stranger = images(copy)[n("2025-06-04T23:00:00", "stranger.png")]
    code, out, _ = run(capsys, adjust, "--folders", copy, "--to-post-time")
    assert code == 0 and "Total renamed: 0" in out and f"{copy}: 0 known, 11 unknown" in out
    before = images(copy)
    code, out, _ = run(capsys, adjust, "--folders", copy, "--to-post-time", "--archive", good, "--dry-run")
    assert code == 0 and out.count("WOULD RENAME:") == 10 and images(copy) == before
    code, out, _ = run(capsys, adjust, "--folders", copy, "--to-post-time", "--archive", good)
    assert code == 0, out
    assert f"{copy}: 10 known, 1 unknown" in out
    repaired = images(copy)
    assert repaired.pop(n("2025-06-04T23:00:00", "stranger.png")) == stranger   # unknown: untouched
    assert repaired == images(good)
    code, out, _ = run(capsys, qc, "--folder", copy, "--verify", "--archive", good, "--no-adjust",
                       "--plot", tmp_path / "p.png")
    assert code == 0 and "Agree:   10" in out and "Unknown: 1" in out
    assert run(capsys, adjust, "--folders", copy, "--undo")[0] == 0
    assert images(copy) == before


def test_the_printed_verify_fix_covers_the_whole_folder_set_and_repairs_it(world, capsys, tmp_path):
    """Checked with the defaults (the clean folder), verify's printed fix
    names all three pipeline folders: run as printed, it leaves none of
    them misnamed (a fix of the clean folder alone left the download and
    the picks an hour off)."""
    for i, day in enumerate(WEEK[:3]):
        for j, moment in enumerate(("10:00:00", "14:00:00")):
            world.post(ny(f"{day}T{moment}"), f"d{i}c{j}.png")
    raw, clean, daily = config.PIPELINE_FOLDERS
    download(capsys, world, raw)
    assert run(capsys, deduplicate_images, "--source", raw, "--output", clean)[0] == 0
    assert run(capsys, extract_one_per_day, "--source", clean, "--output", daily)[0] == 0
    assert run(capsys, adjust, "--folders", raw, clean, daily, "--hours", "-1", "--yes")[0] == 0
    code, out, _ = run(capsys, qc, "--verify", "--no-adjust", "--plot", tmp_path / "p.png")
    assert code == 1
    fix = next(line.strip() for line in out.splitlines() if "--to-post-time" in line)
    assert fix.startswith(f"python adjust_timestamps.py --folders {raw} {clean} {daily} --to-post-time"), fix
    code, out, err = run(capsys, adjust, *shlex.split(fix)[2:], "--yes")
    assert code == 0, out + err
    for folder in (raw, clean, daily):
        code, out, _ = run(capsys, qc, "--folder", folder, "--verify", "--no-adjust", "--plot", tmp_path / "p.png")
        assert code == 0 and "Differ:  0" in out, (folder, out)
