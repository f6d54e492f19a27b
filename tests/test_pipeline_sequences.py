"""A user's nightly sequences against the emulator, through the real entry
points: the pipeline, then the timestamp tools and their --undo, then the
pipeline again; each test is a defect a review found, kept fixed."""
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from download_helpers import UTC, images_in, run_main
from helpers import image_bytes

import adjust_timestamps
import config
import deduplicate_images
from discordpicextract import messages
from discordpicextract.emulator import components as ui
from discordpicextract.market import nyse_sessions
from discordpicextract.timestamps import zone

NY = ZoneInfo("America/New_York")
DOWNLOAD, CLEAN, DAILY = config.PIPELINE_FOLDERS
FOLDERS = [DOWNLOAD, CLEAN, DAILY]


def last_session():
    today = date.today()
    return nyse_sessions(today - timedelta(days=12), today - timedelta(days=1))[-1]


def at(day, hour):
    return datetime(day.year, day.month, day.day, hour, tzinfo=NY).astimezone(UTC)


def test_undoing_a_zone_conversion_puts_back_the_record_it_replaced(world, capsys):
    day = last_session()
    world.post(at(day, 10), "a.png")
    assert run_main(capsys, "--pipeline", "--channel", world.channel["id"])[0] == 0
    assert zone.read_zone(DOWNLOAD) == "America/New_York"
    # names taken for UTC wall time (they were not), converted, then undone
    assert adjust_timestamps.main(["--from-zone", "UTC", "--folders", *FOLDERS]) == 0
    assert adjust_timestamps.main(["--undo", "--folders", *FOLDERS]) == 0
    assert all(zone.read_zone(folder) == "America/New_York" for folder in FOLDERS)
    # the next night's sync is not refused as "a folder in UTC"
    world.post(at(day, 15), "b.png")
    code, out, err = run_main(capsys, "--pipeline", "--channel", world.channel["id"])
    assert code == 0, out + err
    assert images_in(DAILY) == [f"{at(day, 15).astimezone(NY):%Y-%m-%d_%H-%M-%S}_b.png"]
    capsys.readouterr()


def test_undoing_a_conversion_of_a_folder_without_record_keeps_its_names_readable(capsys, make_image):
    make_image(Path("old") / "2025-06-02_14-00-00_a.png", seed=1)
    assert zone.read_zone("old") is None
    assert adjust_timestamps.main(["--from-zone", "UTC", "--folders", "old"]) == 0
    assert adjust_timestamps.main(["--undo", "--folders", "old"]) == 0
    assert images_in("old") == ["2025-06-02_14-00-00_a.png"]
    assert zone.folder_zone("old") == config.TIMEZONE   # as before the conversion
    capsys.readouterr()


def test_quiet_download_still_lists_each_image_that_failed(world, capsys, fast_retries):
    day = last_session()
    world.post(at(day, 10), "a.png")
    world.post(at(day, 11), "broken.png")
    world.emu.inject("status", path_contains="broken.png", times=50, status=500)

    code, out, err = run_main(capsys, "--pipeline", "-q", "--channel", world.channel["id"])

    assert code == 1
    assert out.startswith("=" * 70) and "Pipeline Summary" in out and "1 errors" in out
    failed = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(failed) == 1 and "broken.png (attachment, message" in failed[0], err
    assert failed[0].endswith("HTTP 500 (after 4 attempts)")
    # the default report is unchanged
    world.emu.clear_faults()
    world.emu.inject("status", path_contains="broken.png", times=50, status=500)
    code, out, err = run_main(capsys, "--channel", world.channel["id"])
    assert code == 1 and "  ERROR broken.png (attachment, message" in out and "error: " not in err


def test_a_components_v2_post_keeps_its_caption_in_messages_csv(world, capsys):
    """Such a post has no content: its text is in text displays (type 10)."""
    day = last_session()
    chart = ("chart.png", image_bytes(seed=1), "image/png")
    small = ("small.png", image_bytes(seed=2), "image/png")
    post = world.emu.add_message(world.channel["id"], at(day, 10), components=[ui.container(
        ui.text("SPX 5800C, entry 12.50"), ui.gallery(chart), ui.section("closed \"half\"", small))])
    assert post["content"] == ""

    assert run_main(capsys, "--channel", world.channel["id"])[0] == 0

    rows = messages.read_rows(DOWNLOAD)
    assert [row["source"] for row in rows] == ["component", "component"]
    assert {row["text"] for row in rows} == {'SPX 5800C, entry 12.50\nclosed "half"'}


def test_quiet_undo_prints_its_one_line_summary(capsys, make_image):
    make_image(Path("f") / "2025-06-02_14-00-00_a.png", seed=1)
    make_image(Path("f") / "2025-06-02_15-00-00_b.png", seed=2)
    assert adjust_timestamps.main(["--hours", "1", "--folders", "f", "-q"]) == 0
    assert capsys.readouterr().out == "renames: 2 renamed\n"
    assert adjust_timestamps.main(["--undo", "--folders", "f", "-q"]) == 0
    assert capsys.readouterr().out == "renames: 2 renamed back\n"
    assert images_in("f") == ["2025-06-02_14-00-00_a.png", "2025-06-02_15-00-00_b.png"]


def test_verbose_download_logs_each_answer_and_file_on_stderr(world, capsys):
    day = last_session()
    world.post(at(day, 10), "a.png")
    world.emu.inject("rate_limit", path_contains="/messages", times=1, retry_after=0.05)

    code, out, err = run_main(capsys, "--channel", world.channel["id"], "-v")

    assert code == 0, out + err
    assert "Download Summary:" in out and "debug:" not in out
    assert f"debug: GET /channels/{world.channel['id']}/messages?limit=100: HTTP 429" in err
    assert "rate limited, waiting 0.05 s" in err
    assert f"debug: saved {at(day, 10).astimezone(NY):%Y-%m-%d_%H-%M-%S}_a.png: a.png (attachment, message" in err
    assert world.token not in out + err
    assert "debug:" not in run_main(capsys, "--channel", world.channel["id"])[2]


def settings_error(capsys, text):
    Path("s.toml").write_text(text, encoding="utf-8")
    assert deduplicate_images.main(["--config", "s.toml", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    return err.strip()


def test_settings_errors_say_the_type_given_and_the_line_of_a_misplaced_table(capsys):
    assert settings_error(capsys, '[[channel]]\nid = 123\nfolder = "a"\n') == (
        "error: s.toml:2: channel.id: expected a channel ID (15 to 21 digits, best quoted), "
        "got a whole number (123)")
    assert settings_error(capsys, 'days = 3\n\n[folders.sub]\nx = 1\n') == (
        "error: s.toml:3: unknown key 'sub' in [folders] (known: download, clean, one_per_day)")
    assert settings_error(capsys, '[folder_template]\nclean = "{folder}"\n\n'
                                  '[[channel]]\nid = "123456789012345678"\nfolder = "a"\n') == (
        "error: s.toml:4: [folder_template] gives two folders of this channel the same name 'a' "
        "(download, clean and one_per_day must differ)")


def test_messages_csv_saved_by_a_spreadsheet_with_a_bom_still_follows_renames(world, capsys):
    day = last_session()
    post = world.post(at(day, 10), "a.png", content="entry, 5800C")
    assert run_main(capsys, "--channel", world.channel["id"])[0] == 0
    table = Path(DOWNLOAD) / "messages.csv"
    table.write_bytes(b"\xef\xbb\xbf" + table.read_bytes().replace(b"\n", b"\r\n"))  # Excel's "CSV UTF-8"

    assert deduplicate_images.main(["--source", DOWNLOAD, "--output", CLEAN]) == 0
    assert [row["text"] for row in messages.read_rows(CLEAN)] == ["entry, 5800C"]   # the copy's row
    assert adjust_timestamps.main(["--hours", "1", "--folders", DOWNLOAD]) == 0

    renamed = f"{at(day, 11).astimezone(NY):%Y-%m-%d_%H-%M-%S}_a.png"
    assert images_in(DOWNLOAD) == [renamed]
    assert [(row["file"], row["message_id"], row["text"]) for row in messages.read_rows(DOWNLOAD)] == [
        (renamed, post["id"], "entry, 5800C")]
    capsys.readouterr()
