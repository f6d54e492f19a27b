"""discord_downloader.py, the download step, through its own main(argv); the
client's page loops (one paginate helper) over several pages of threads; the
progress callback; and main.py importing no step script until it runs one."""
import subprocess
import sys

from download_helpers import ROOT, ago, api_requests, images_in, start_world

import discord_downloader
from discordpicextract import discord


def _run(capsys, *argv):
    code = discord_downloader.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_step_script_downloads_a_channel_and_knows_no_demo(world, capsys):
    world.post(ago(hours=2), "one.png")
    world.post(ago(hours=1), "two.png")
    code, out, err = _run(capsys, "--channel", "spx-realtime-aws", "--guild", world.guild["name"], "--days", "1",
                          "--output", "out", "--no-progress")
    assert code == 0, err
    assert sorted(n.split("_", 2)[2] for n in images_in("out")) == ["one.png", "two.png"]
    assert "Downloaded: 2" in out and world.token not in out + err
    code, _, err = _run(capsys, "--demo")
    assert code == 2 and "discord_downloader.py: unrecognized arguments: --demo" in err


def test_thread_search_pages_are_followed_by_offset_and_stop_at_the_first_stale_thread(world, capsys):
    """A user token lists threads 25 at a time (/threads/search, archived and
    not), sorted by last message time: 30 active threads take two pages; the
    first thread whose last message is older than the window ends the paging
    (30 stale ones behind it are neither paged through nor read)."""
    w = world
    active = [w.emu.add_thread(w.channel["id"], f"open {k}", created=ago(hours=8)) for k in range(30)]
    stale = [w.emu.add_thread(w.channel["id"], f"stale {k}", created=ago(days=3)) for k in range(30)]
    for thread in active[1:]:
        w.emu.add_message(thread["id"], ago(hours=1), content="chatter")
    w.post(ago(hours=2), "deep_open.png", channel=active[0])    # the oldest last message: the last page
    closed = [w.emu.add_thread(w.channel["id"], f"closed {k}", archived=True, archive_time=ago(hours=1),
                               created=ago(hours=9)) for k in range(3)]
    w.post(ago(hours=2), "deep_closed.png", channel=closed[0])
    code, out, err = _run(capsys, "--channel", w.channel["id"], "--days", "1", "--threads", "--output", "out")
    assert code == 0, err
    assert sorted(n.split("_", 2)[2] for n in images_in("out")) == ["deep_closed.png", "deep_open.png"]
    assert "Channels and threads: 34" in out
    searches = [(r.query["archived"], r.query["offset"]) for r in api_requests(w.emu, "/threads/search")]
    assert searches == [("false", "0"), ("false", "25"), ("true", "0")]
    assert all(r.query["sort_by"] == "last_message_time" for r in api_requests(w.emu, "/threads/search"))
    assert not any(api_requests(w.emu, f"/channels/{t['id']}/messages") for t in stale)


def test_archived_thread_pages_are_followed_by_archive_time(monkeypatch, capsys):
    """A bot token reads archived public threads 100 at a time, each next
    page before the last one's archive time; it stops at the first thread
    archived before the window."""
    w = start_world(monkeypatch, kind="bot")
    try:
        recent = [w.emu.add_thread(w.channel["id"], f"t{k}", archived=True, archive_time=ago(minutes=10 + k),
                                   created=ago(hours=20)) for k in range(105)]
        for k in range(3):
            w.emu.add_thread(w.channel["id"], f"old{k}", archived=True, archive_time=ago(days=3 + k))
        w.post(ago(hours=20), "oldest_recent.png", channel=recent[-1])
        code, out, err = _run(capsys, "--channel", w.channel["id"], "--days", "1", "--threads", "--output", "out")
        assert code == 0, err
        assert [n.split("_", 2)[2] for n in images_in("out")] == ["oldest_recent.png"]
        assert "Channels and threads: 106" in out
        pages = api_requests(w.emu, "/threads/archived/public")
        assert len(pages) == 2 and "before" not in pages[0].query
        assert pages[1].query["before"] == recent[99]["thread_metadata"]["archive_timestamp"]
    finally:
        w.emu.stop()


def test_progress_hears_of_every_image_found_and_finished(world, tmp_path):
    for k in range(5):
        world.post(ago(minutes=10 + k), f"p{k}.png")
    client = discord.DiscordClient(world.token, "user", api_base=world.emu.api_base)
    heard = []
    result = discord.run_download(client, [world.channel], tmp_path / "out", discord.cutoff_for(1),
                                  progress=lambda found, done: heard.append((found, done)))
    assert len(result.downloaded) == 5
    assert sum(f for f, _ in heard) == 5 and sum(d for _, d in heard) == 5
    # a second run finds the same five and finishes them as already downloaded
    heard.clear()
    again = discord.run_download(client, [world.channel], tmp_path / "out", discord.cutoff_for(1),
                                 progress=lambda found, done: heard.append((found, done)))
    assert again.skipped == 5 and sum(f for f, _ in heard) == 5 and all(f == d for f, d in heard)


def test_main_imports_no_step_script_until_it_runs_one():
    steps = ("discord_downloader", "deduplicate_images", "extract_one_per_day", "check_unique_dates",
             "quality_check_timestamps", "discordpicextract.emulator")
    probe = f"import sys, main; print([m for m in {steps!r} if m in sys.modules])"
    run = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_after_in_the_future_is_bad_input_not_a_quiet_empty_run(world, capsys):
    world.post(ago(hours=1), "today.png")
    code, out, err = _run(capsys, "--channel", world.channel["id"], "--after", "2099-01-05", "--output", "out",
                          "--no-progress")
    assert code == 2 and not out
    assert err.strip().splitlines() == [
        "error: --after is in the future (2099-01-05 05:00 UTC): nothing can have been posted since"]
    assert not api_requests(world.emu, "/messages")
