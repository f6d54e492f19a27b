"""main.py --pipeline as a repeatable sync, against the emulator, through
main(argv) and once as a subprocess: download, dedupe, one per day, checks;
re-runs after more messages, renames and undo; several configured channels;
messages.csv; file times; settings errors."""
import csv
import os
import re
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from download_helpers import CHANNEL, GUILD, ROOT, UTC, images_in, run_main

import adjust_timestamps
import config
import deduplicate_images
import discord_downloader
from discordpicextract import records
from discordpicextract.market import nyse_sessions

NY = ZoneInfo("America/New_York")
DOWNLOAD, CLEAN, DAILY = config.PIPELINE_FOLDERS


def two_sessions():
    """The last two NYSE sessions before today (both inside --days 14)."""
    today = date.today()
    return nyse_sessions(today - timedelta(days=12), today - timedelta(days=1))[-2:]


def at(day, clock):
    """An aware UTC moment from a New York date and HH:MM."""
    hour, minute = map(int, clock.split(":"))
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=NY).astimezone(UTC)


def local_name(moment, original):
    return f"{moment.astimezone(NY):%Y-%m-%d_%H-%M-%S}_{original}"


def rows(folder):
    with open(Path(folder) / "messages.csv", encoding="utf-8", newline="") as handle:
        return {row["file"]: row for row in csv.DictReader(handle)}


def pipeline(capsys, *extra):
    return run_main(capsys, "--pipeline", *extra)


def test_nightly_sync_keeps_one_latest_image_per_date_through_renames_and_undo(world, capsys, make_image):
    s1, s2 = two_sessions()
    w = world
    first = w.post(at(s1, "10:00"), "a.png", seed=1, content="long SPX 5800C")
    w.post(at(s1, "10:05"), "a.png", seed=1, content="same chart again")     # a repost: a duplicate
    lunch = w.post(at(s1, "11:00"), "b.png", seed=2, content="adding here")

    code, out, err = pipeline(capsys, "--channel", w.channel["id"])
    assert code == 0, out + err
    assert "Pipeline Summary" in out and "Exit 0: all fine" in out
    table = out[out.index("Pipeline Summary"):]
    for step in ("download", "dedupe", "one per day", "date coverage", "market hours"):
        assert f"\n{w.channel['id']}  {step} " in table
    # the market-hours check verifies the names against the post times (--verify)
    assert re.search(r"\n\d+ +market hours +ok .*, 2 verified", table), table
    assert images_in(DAILY) == [local_name(at(s1, "11:00"), "b.png")]
    assert len(images_in(DOWNLOAD)) == 3 and len(images_in(CLEAN)) == 2

    # messages.csv: one row per image, matching the emulator's messages
    by_file = rows(DOWNLOAD)
    row = by_file[local_name(at(s1, "10:00"), "a.png")]
    assert row["message_id"] == first["id"] and row["text"] == "long SPX 5800C"
    assert row["author"] == first["author"]["username"] and row["author_id"] == first["author"]["id"]
    assert row["link"] == f"https://discord.com/channels/{w.guild['id']}/{w.channel['id']}/{first['id']}"
    assert row["source"] == "attachment" and row["posted_at"].startswith(f"{at(s1, '10:00'):%Y-%m-%dT%H:%M}")
    assert set(rows(DAILY)) == {local_name(at(s1, "11:00"), "b.png")}
    # file times are post times, in the download and in every copy
    for folder in (DOWNLOAD, CLEAN, DAILY):
        for name in images_in(folder):
            posted = datetime.fromisoformat(rows(DOWNLOAD)[name]["posted_at"].replace("Z", "+00:00"))
            assert os.stat(Path(folder) / name).st_mtime == posted.timestamp(), (folder, name)

    mine = make_image(Path(CLEAN) / local_name(at(s1, "10:45"), "mine.png"), seed=42)  # the user's own
    mine_bytes = mine.read_bytes()

    # later the same day, and a new day
    later = w.post(at(s1, "15:30"), "e.png", seed=5, content="closing it")
    w.post(at(s2, "10:00"), "c.png", seed=3)
    w.post(at(s2, "12:00"), "d.png", seed=4)
    code, out, err = pipeline(capsys, "--channel", w.channel["id"])
    expected = [local_name(at(s1, "15:30"), "e.png"), local_name(at(s2, "12:00"), "d.png")]
    assert code == 0, out + err
    assert images_in(DAILY) == expected
    assert f"Removed {local_name(at(s1, '11:00'), 'b.png')}: an earlier pick of ours" in out
    assert f"Left alone: {mine.name} (not written by this step)" in out
    assert mine.read_bytes() == mine_bytes
    assert lunch["id"] in rows(DOWNLOAD)[local_name(at(s1, "11:00"), "b.png")]["link"]

    # names shifted by the timestamp tool: records and rows follow, the sync stays exact
    assert adjust_timestamps.main(["--hours", "-1", "--yes", "--folders", DOWNLOAD, CLEAN, DAILY]) == 0
    shifted = [local_name(at(s1, "14:30"), "e.png"), local_name(at(s2, "11:00"), "d.png")]
    assert images_in(DAILY) == shifted
    assert set(records.read_record(DAILY)) == set(shifted)      # the copy record followed
    assert rows(DAILY)[shifted[0]]["message_id"] == later["id"]
    assert rows(DOWNLOAD)[shifted[0]]["text"] == "closing it"
    code, out, err = pipeline(capsys, "--channel", w.channel["id"])
    assert images_in(DAILY) == shifted
    assert "0 new picks, 0 earlier picks removed" in out and "0 copied, 0 removed" in out
    assert (Path(CLEAN) / local_name(at(s1, "09:45"), "mine.png")).read_bytes() == mine_bytes  # renamed too

    assert adjust_timestamps.main(["--undo", "--folders", DOWNLOAD, CLEAN, DAILY]) == 0
    code, out, err = pipeline(capsys, "--channel", w.channel["id"])
    assert code == 0, out + err
    assert images_in(DAILY) == expected and mine.read_bytes() == mine_bytes
    assert set(rows(DAILY)) == set(expected)


SETTINGS = """\
days = 5

[[channel]]
id = "{signals}"
folder = "signals"

[[channel]]
name = "{name}"
guild = "{guild}"
folder = "spx"

[folder_template]
one_per_day = "{{folder}}-daily"
"""


def two_channels(w):
    signals = w.emu.add_channel(w.guild["id"], "signals")
    s1, s2 = two_sessions()
    w.post(at(s1, "10:00"), "sig.png", channel=signals, content="signal one")
    w.post(at(s2, "11:00"), "sig.png", channel=signals, content="signal two")
    w.post(at(s2, "12:00"), "spx.png", content="spx chart")
    Path("discordpicextract.toml").write_text(
        SETTINGS.format(signals=signals["id"], name=CHANNEL, guild=GUILD), encoding="utf-8")
    return s1, s2


def test_two_configured_channels_each_into_its_own_folder_set_quietly(world, capsys):
    s1, s2 = two_channels(world)

    code, out, err = pipeline(capsys, "-q")

    assert code == 0, out + err
    assert images_in("signals") == images_in("signals-clean") == [
        local_name(at(s1, "10:00"), "sig.png"), local_name(at(s2, "11:00"), "sig.png")]
    assert images_in("signals-daily") == images_in("signals")
    assert images_in("spx") == images_in("spx-daily") == [local_name(at(s2, "12:00"), "spx.png")]
    assert rows("spx")[images_in("spx")[0]]["text"] == "spx chart"
    assert not Path(DOWNLOAD).exists()
    # quiet: the summary table is the whole output
    assert out.startswith("=" * 70) and "Pipeline Summary" in out and "Download Summary" not in out
    assert out.count("\nsignals  ") == 6 and out.count("\nspx  ") == 6
    # each channel's own review page, named after its download folder
    for folder in ("signals", "spx"):
        page = Path(f"{folder}-{config.REVIEW_DIR}") / "index.html"
        assert page.is_file() and re.search(rf"\n{folder} +review page +ok .*{page}", out)


def test_pipeline_as_a_subprocess_from_cron(world):
    two_channels(world)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "--pipeline", "-q"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Exit 0: all fine" in done.stdout
    # -q keeps only the user-token warning of each download on stderr
    assert set(done.stderr.splitlines()) == {discord_downloader.USER_TOKEN_WARNING}
    assert len(images_in("signals-daily")) == 2


def test_settings_errors_are_one_line_exit_2_on_every_script(capsys, tmp_path):
    Path("bad.toml").write_text('days = 3\n\n[folders]\ndownlaod = "x"\n', encoding="utf-8")
    code, out, err = run_main(capsys, "--pipeline", "--config", "bad.toml")
    assert code == 2
    assert err.strip() == ("error: bad.toml:4: unknown key 'downlaod' in [folders] "
                           "(known: download, clean, one_per_day)")
    Path("discordpicextract.toml").write_text('workers = "many"\n', encoding="utf-8")
    assert deduplicate_images.main([]) == 2
    assert "discordpicextract.toml:1: workers: expected a whole number, got a string ('many')" in \
        capsys.readouterr().err
    code, out, err = run_main(capsys, "--pipeline")
    assert code == 2 and "discordpicextract.toml:1: workers" in err


def test_a_configured_folder_name_is_every_step_s_default(capsys, tmp_path, make_image):
    Path("discordpicextract.toml").write_text('[folders]\ndownload = "in"\nclean = "in-unique"\n',
                                              encoding="utf-8")
    make_image(Path("in") / "2025-02-14_10-00-00_a.png", seed=1)
    assert deduplicate_images.main([]) == 0
    assert images_in("in-unique") == ["2025-02-14_10-00-00_a.png"]
    capsys.readouterr()
    assert deduplicate_images.main(["-q", "--output", "elsewhere"]) == 0   # a flag wins
    out = capsys.readouterr().out
    assert out == "deduplicate_images.py: 1 scanned, 0 duplicates skipped, 1 copied, 0 removed\n"


def test_a_channel_that_cannot_be_downloaded_skips_its_steps_not_the_others(world, capsys):
    two_channels(world)
    settings_file = Path("discordpicextract.toml")
    settings_file.write_text(settings_file.read_text(encoding="utf-8").replace(
        f'name = "{CHANNEL}"', 'name = "no-such-channel"'), encoding="utf-8")

    code, out, err = pipeline(capsys)

    assert code == 2
    assert "channel #no-such-channel not found" in err
    table = out[out.index("Pipeline Summary"):]
    assert "\nspx      download       error" in table and table.count("not run") == 5
    assert len(images_in("signals-daily")) == 2 and not Path("spx-clean").exists()
    assert "Exit 2: bad input" in table


def test_verbose_shows_details_on_stderr_default_output_unchanged(capsys, make_image):
    make_image(Path("in") / "2025-02-14_10-00-00_a.png", seed=1)
    assert deduplicate_images.main(["--source", "in", "--output", "out"]) == 0
    default = capsys.readouterr()
    assert "Deduplication Summary:" in default.out and default.err == ""
    make_image(Path("in") / "2025-02-15_10-00-00_b.png", seed=2)
    assert deduplicate_images.main(["--source", "in", "--output", "out", "-v"]) == 0
    verbose = capsys.readouterr()
    assert "Deduplication Summary:" in verbose.out
    assert "debug: copied 2025-02-15_10-00-00_b.png" in verbose.err


def test_no_messages_leaves_messages_csv_out(world, capsys):
    s1, _s2 = two_sessions()
    world.post(at(s1, "10:00"), "a.png", content="not kept")
    code, out, err = pipeline(capsys, "--channel", world.channel["id"], "--no-messages")
    assert code == 0, out + err
    assert len(images_in(DAILY)) == 1
    assert not any(Path(folder, "messages.csv").exists() for folder in (DOWNLOAD, CLEAN, DAILY))


def test_messages_csv_keeps_a_carriage_return_and_is_read_afresh_after_an_edit(world, capsys):
    """A message text with a lone CR stays one row (csv quotes only a line
    feed by itself); a messages.csv edited by hand between two steps of one
    process, to the same size, is what the next step reads (the rows parsed
    once are reused only for the very same bytes)."""
    s1, _s2 = two_sessions()
    name = local_name(at(s1, "10:00"), "a.png")
    world.post(at(s1, "10:00"), "a.png", content="long SPX\r5800C")
    code, out, err = pipeline(capsys, "--channel", world.channel["id"])
    assert code == 0, out + err
    assert rows(DOWNLOAD)[name]["text"] == rows(CLEAN)[name]["text"] == "long SPX\r5800C"
    assert len(rows(DOWNLOAD)) == 1

    listed = Path(DOWNLOAD) / "messages.csv"
    listed.write_bytes(listed.read_bytes().replace(b"5800C", b"5900P"))
    assert deduplicate_images.main(["--source", DOWNLOAD, "--output", CLEAN]) == 0
    assert rows(CLEAN)[name]["text"] == "long SPX\r5900P"


def test_the_steps_list_each_folder_once_while_it_stays_the_same(world, capsys, monkeypatch, make_image):
    """Inside --pipeline a folder listed again is answered from its last
    listing only while its names and modification time are the same: any
    write is seen by the next listing, and a folder holding a link is
    always listed afresh."""
    from discordpicextract import listings, naming

    listed = []
    real = naming.list_images_afresh
    monkeypatch.setattr(naming, "list_images_afresh", lambda folder: listed.append(str(folder)) or real(folder))
    s1, _s2 = two_sessions()
    world.post(at(s1, "10:00"), "a.png")
    world.post(at(s1, "11:00"), "b.png")
    code, out, err = pipeline(capsys, "--channel", world.channel["id"])
    assert code == 0, out + err
    # dedupe, one per day, the date check, the market check and the review list the
    # download folder 5 times, the one-per-day folder 4 times: each changed at most twice
    assert listed.count(DOWNLOAD) <= 2 and listed.count(DAILY) <= 2, listed

    folder = Path("own")
    make_image(folder / "2025-02-14_10-00-00_a.png", seed=1)
    with listings.shared():
        first = naming.list_images(folder)
        assert naming.list_images(folder).images == first.images
        make_image(folder / "2025-02-14_11-00-00_b.png", seed=2)
        assert [i.name for i in naming.list_images(folder).images] == [
            "2025-02-14_10-00-00_a.png", "2025-02-14_11-00-00_b.png"]
        (folder / "2025-02-14_11-00-00_b.png").unlink()
        (folder / "2025-02-14_11-00-00_b.png").mkdir()  # same names, another kind of entry
        again = naming.list_images(folder)
        assert again.images == first.images and [p.name for p in again.not_files] == ["2025-02-14_11-00-00_b.png"]
        os.symlink("2025-02-14_10-00-00_a.png", folder / "2025-02-14_12-00-00_c.png")
        before = len(listed)
        naming.list_images(folder)
        naming.list_images(folder)
        assert len(listed) == before + 2  # a folder with a link: listed each time
    assert naming._memo is None  # the memo ends with the block


def test_a_step_that_crashes_fails_its_row_and_the_other_channel_still_syncs(world, capsys, monkeypatch):
    s1, s2 = two_channels(world)
    real = deduplicate_images._main

    def crashing(argv):   # a bug in dedupe, met on one channel's folders only
        if "signals" in argv:
            raise KeyError("phash")
        return real(argv)

    monkeypatch.setattr(deduplicate_images, "_main", crashing)

    code, out, err = pipeline(capsys, "-q")

    assert code == 1, out + err
    assert re.search(r"\nsignals +dedupe +failed .*crashed: KeyError: 'phash'", out), out
    for later in ("one per day", "date coverage", "market hours", "review page"):
        assert re.search(rf"\nsignals +{later} +not run ", out), out
    assert "Exit 1: something needs a look" in out
    assert "error: deduplicate_images.py crashed: KeyError: 'phash'" in err and "Traceback" not in err + out
    # the other channel ran every step
    assert images_in("spx-daily") == [local_name(at(s2, "12:00"), "spx.png")]
    assert out.count("\nspx  ") == 6 and not re.search(r"\nspx +\S+( \S+)* +(failed|not run) ", out)
    # the default output: the step's one line, no traceback; -v: the traceback, on stderr
    code, out, err = pipeline(capsys)
    assert code == 1 and "crashed: KeyError: 'phash'" in err and "Traceback" not in out + err
    code, out, err = pipeline(capsys, "-v")
    assert code == 1 and "Traceback (most recent call last)" in err and "raise KeyError" in err
