"""main.py against the loopback emulator: real HTTP, real images, through main(argv)."""
import os
import sqlite3
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from download_helpers import (
    GUILD,
    UTC,
    ago,
    api_requests,
    cdn_requests,
    digests,
    images_in,
    run_main,
    start_world,
)
from helpers import image_bytes

import config
from discordpicextract.archive import record_renames
from discordpicextract.emulator import generate_channel


def _by_id(w, *extra):
    return ["--channel", w.channel["id"], "--output", "out", *extra]


def _assert_token_secret(w, text, folder="out"):
    """Token never printed, never in a file, never sent to the CDN."""
    assert w.token not in text
    for path in Path(folder).rglob("*"):
        if path.is_file():
            assert w.token.encode() not in path.read_bytes(), path
    cdn = cdn_requests(w.emu)
    assert all(r.authorization is None for r in cdn)
    assert all(r.authorization == w.token for r in api_requests(w.emu))
    # a user token announces no bot library: no User-Agent at all, on the API and the CDN alike
    assert {r.user_agent for r in w.emu.requests} == {None}


def test_channel_by_name_in_unicode_guild_downloads_every_source(world, capsys):
    w = world
    emu = w.emu
    other = emu.add_guild("Options Desk")
    emu.add_channel(other["id"], "spx-realtime-aws")  # the same name in another server
    t = ago(hours=3)
    text_url = emu.host_image("from text.png", image_bytes(11, (40, 30))) + "?width=40&ref=tv1"
    embed_url = emu.host_image("embedded.png", image_bytes(12, (40, 30)))
    fwd_url = emu.host_image("fwd_chart.png", image_bytes(13, (40, 30)))
    video = emu.host_image("clip.mp4", b"\0\0\0\x18ftypmp42" + bytes(32), "video/mp4")
    w.post(t, "chart.png", content=f"chart: {text_url} and again {text_url}",
           embeds=[{"type": "image", "url": text_url, "thumbnail": {"url": text_url}}])
    w.post(t + timedelta(minutes=1), embeds=[{"type": "rich", "image": {"url": embed_url}},
                                             {"type": "video", "url": video, "video": {"url": video}}])
    emu.add_message(w.channel["id"], t + timedelta(minutes=2), content="fwd",
                    snapshots=[{"content": f"see {fwd_url}?s=1",
                                "attachments": [("image.png", image_bytes(14, (40, 30)), "image/png")]}])
    emu.add_message(w.channel["id"], t + timedelta(minutes=3),
                    attachments=[("levels.txt", b"5800\n", "text/plain")])

    code, out, err = run_main(capsys, "--channel", "#SPX-Realtime-AWS", "--guild", "数学家炒美股",
                              "--days", "1", "--output", "out")
    assert code == 0, err
    assert f"in {GUILD}" in out and w.channel["id"] in out
    originals = sorted(n.split("_", 2)[2] for n in images_in("out"))
    assert originals == ["chart.png", "embedded.png", "from text.png", "fwd_chart.png", "image.png"]
    assert "Downloaded: 5" in out and "Errors: 0" in out
    fetched = [r.path for r in cdn_requests(emu)]
    assert len(fetched) == len(set(fetched)) == 5  # the repeated URL once, no video
    _assert_token_secret(w, out + err)


def test_days_boundary_stops_at_the_first_older_message(world, capsys):
    w = world
    inside = w.post(ago(days=2) + timedelta(minutes=2), "inside.png")
    w.post(ago(days=2) - timedelta(minutes=2), "outside.png")
    w.post(ago(days=9), "much_older.png")
    code, out, err = run_main(capsys, *_by_id(w, "--days", "2"))
    assert code == 0, err
    assert [n.split("_", 2)[2] for n in images_in("out")] == ["inside.png"]
    pages = api_requests(w.emu, "/messages")
    assert len(pages) == 1 and pages[0].query.get("limit") == "100"
    assert "Downloaded: 1" in out and inside["attachments"][0]["filename"] == "inside.png"


def test_pagination_over_several_pages_without_a_single_429(monkeypatch, capsys):
    # Discord-like bucket: 5 requests per second on each route.
    w = start_world(monkeypatch, route_limit=(5, 1.0))
    try:
        start = ago(hours=12)
        for k in range(730):
            if k % 20 == 0:
                w.post(start + timedelta(seconds=k), f"chart{k}.png", seed=k)
            else:
                w.emu.add_message(w.channel["id"], start + timedelta(seconds=k), content=f"msg {k}")
        code, out, err = run_main(capsys, *_by_id(w, "--days", "1"))
        assert code == 0, err
        assert len(images_in("out")) == 37 and "Messages read: 730" in out
        pages = api_requests(w.emu, "/messages")
        assert len(pages) == 8 and all(p.query.get("before") for p in pages[1:])
        assert w.emu.count_status(429) == 0
    finally:
        w.emu.stop()


def test_same_name_in_the_same_second_keeps_every_image(world, capsys):
    w = world
    second = ago(hours=1).replace(microsecond=0)
    for offset in (50, 350, 600):
        w.post(second + timedelta(milliseconds=offset), "image.png")
    w.post(second + timedelta(milliseconds=900), "image.png", "image.png")
    code, out, err = run_main(capsys, *_by_id(w, "--days", "1"))
    assert code == 0, err
    names = images_in("out")
    stamp = second.astimezone(__import__("zoneinfo").ZoneInfo(config.TIMEZONE)).strftime("%Y-%m-%d_%H-%M-%S")
    assert names == [f"{stamp}_image.png"] + [f"{stamp}_image_{k}.png" for k in range(2, 6)]
    assert len(set(digests("out").values())) == 5
    # deterministic: a second download into a fresh folder gives the same name -> image mapping
    code, _, _ = run_main(capsys, "--channel", w.channel["id"], "--days", "1", "--output", "again")
    assert code == 0 and digests("again") == digests("out")


def test_timezone_flag_and_dst_dates_in_file_names(world, capsys):
    w = world
    w.post(datetime(2026, 3, 6, 15, 0, 5, tzinfo=UTC), "march_est.png")
    w.post(datetime(2026, 3, 9, 15, 0, 5, tzinfo=UTC), "march_edt.png")
    w.post(datetime(2026, 10, 30, 14, 0, 0, tzinfo=UTC), "nov_edt.png")
    w.post(datetime(2026, 11, 2, 15, 0, 0, tzinfo=UTC), "nov_est.png")
    # (messages after "now" are always in the window)
    days = max(2, (datetime.now(UTC) - datetime(2026, 3, 1, tzinfo=UTC)).days + 2)
    code, _, err = run_main(capsys, *_by_id(w, "--days", days))
    assert code == 0, err
    assert set(images_in("out")) >= {
        "2026-03-06_10-00-05_march_est.png", "2026-03-09_11-00-05_march_edt.png",
        "2026-10-30_10-00-00_nov_edt.png", "2026-11-02_10-00-00_nov_est.png"}
    code, _, err = run_main(capsys, "--channel", w.channel["id"], "--days", days,
                            "--output", "utc", "--timezone", "UTC")
    assert code == 0, err
    assert "2026-03-09_15-00-05_march_edt.png" in images_in("utc")


def test_rerun_skips_saved_and_renamed_images_and_fetches_only_new_ones(world, capsys):
    w = world
    w.post(ago(hours=5), "a.png")
    w.post(ago(hours=4), "b.png")
    assert run_main(capsys, *_by_id(w, "--days", "1"))[0] == 0
    first = images_in("out")
    # the timestamp tools rename a file and tell the archive
    renamed = first[0].replace(first[0][:10], "1999-01-01")
    os.rename(Path("out", first[0]), Path("out", renamed))
    record_renames("out", {first[0]: renamed})
    w.post(ago(hours=1), "c.png")
    w.emu.clear_log()
    code, out, err = run_main(capsys, *_by_id(w, "--days", "1"))
    assert code == 0, err
    assert "Downloaded: 1" in out and "Skipped (already downloaded): 2" in out
    assert first[0] not in images_in("out") and renamed in images_in("out")
    assert len(images_in("out")) == 3
    assert len(cdn_requests(w.emu)) == 1


def test_existing_files_are_never_overwritten(world, capsys):
    """A file already under the planned name: identical bytes -> kept and
    claimed (a folder from the old tool), different bytes -> left alone and
    the download saved under the next name."""
    w = world
    same = image_bytes(501, (64, 48))
    when = ago(hours=2).replace(microsecond=0)
    w.emu.add_message(w.channel["id"], when, attachments=[("same.png", same, "image/png")])
    w.post(when, "other.png")
    stamp = when.astimezone(__import__("zoneinfo").ZoneInfo(config.TIMEZONE)).strftime("%Y-%m-%d_%H-%M-%S")
    Path("out").mkdir()
    Path("out", f"{stamp}_same.png").write_bytes(same)
    foreign = image_bytes(777, (64, 48))
    Path("out", f"{stamp}_other.png").write_bytes(foreign)
    code, out, err = run_main(capsys, *_by_id(w, "--days", "1"))
    assert code == 0, err
    assert images_in("out") == [f"{stamp}_other.png", f"{stamp}_other_2.png", f"{stamp}_same.png"]
    assert Path("out", f"{stamp}_other.png").read_bytes() == foreign
    assert "already on disk: 1" in out
    code, out, _ = run_main(capsys, *_by_id(w, "--days", "1"))
    assert code == 0 and "Skipped (already downloaded): 2" in out and len(images_in("out")) == 3


def test_429_storm_and_5xx_are_retried(world, capsys, fast_retries):
    w = world
    for k in range(4):
        w.post(ago(hours=k + 1), f"c{k}.png")
    w.emu.inject("rate_limit", retry_after=0.2, path_contains="/messages", times=3)
    w.emu.inject("status", status=502, path_contains="/users/@me", times=2)
    w.emu.inject("status", status=503, path_contains="/attachments/", times=3)
    code, out, err = run_main(capsys, *_by_id(w, "--days", "1"))
    assert code == 0, err
    assert len(images_in("out")) == 4
    assert w.emu.count_status(429) == 3 and w.emu.count_status(502) == 2 and w.emu.count_status(503) == 3


def test_global_429_and_absurd_wait_are_honoured_and_capped(world, capsys):
    w = world
    w.post(ago(hours=1), "c.png")
    w.emu.inject("rate_limit", retry_after=0.3, is_global=True, path_contains="/channels/", times=1)
    w.emu.inject("rate_limit_absurd", reset_after=3600.0, path_contains="/messages", times=1)
    code, out, err = run_main(capsys, *_by_id(w, "--days", "1", "--max-wait", "0.5"))
    assert code == 0, err
    assert len(images_in("out")) == 1
    assert "WARNING" in out and "3600" in out and "capped at 0.5 s" in out


def test_truncated_and_html_bodies_are_retried_then_reported_never_saved(world, capsys, fast_retries):
    w = world
    w.post(ago(hours=3), "cut.png")
    w.post(ago(hours=2), "page.png")
    w.post(ago(hours=1), "fine.png")
    w.emu.inject("truncate", path_contains="cut.png", times=config.MAX_RETRIES + 1)
    w.emu.inject("html", path_contains="page.png", times=config.MAX_RETRIES + 1)
    code, out, err = run_main(capsys, *_by_id(w, "--days", "1"))
    assert code == 1
    assert [n.split("_", 2)[2] for n in images_in("out")] == ["fine.png"]
    assert not [p for p in Path("out").iterdir() if p.name.endswith(".part")]
    assert "Errors: 2" in out
    assert "cut.png" in out and ("Content-Length" in out or "connection closed" in out)
    assert "page.png" in out and "text/html" in out
    # a later run fetches the two missing ones (they were never archived)
    code, out, _ = run_main(capsys, *_by_id(w, "--days", "1"))
    assert code == 0 and "Downloaded: 2" in out and len(images_in("out")) == 3


def test_one_truncated_body_then_a_good_one_is_saved_whole(world, capsys, fast_retries):
    w = world
    msg = w.post(ago(hours=1), "chart.png")
    w.emu.inject("truncate", path_contains="/attachments/", times=1)
    code, _, err = run_main(capsys, *_by_id(w, "--days", "1"))
    assert code == 0, err
    [name] = images_in("out")
    assert Path("out", name).stat().st_size == msg["attachments"][0]["size"]


@pytest.mark.parametrize("fmt, cut", [("JPEG", 2), ("JPEG", 400), ("GIF", 1), ("PNG", 1)])
def test_an_image_stored_cut_short_is_refused_never_saved(world, capsys, fast_retries, fmt, cut):
    """The CDN sends the whole of a file that is itself cut short (its
    Content-Length is right): only the image check can tell. The JPEG lacks
    its end-of-image marker; the GIF only its trailer byte and the PNG a
    byte of its end chunk's CRC, which Pillow reads without a word: the
    check is dedupe's (images.integrity)."""
    w = world
    whole = image_bytes(seed=31, size=(120, 80), fmt=fmt)
    name = f"cut.{fmt.lower()}"
    w.emu.add_message(w.channel["id"], ago(hours=2), attachments=[(name, whole[:-cut], f"image/{fmt.lower()}")])
    w.post(ago(hours=1), "fine.png")
    code, out, err = run_main(capsys, *_by_id(w, "--days", "1"))
    assert code == 1, err
    assert [n.split("_", 2)[2] for n in images_in("out")] == ["fine.png"]
    assert name in out and "not a decodable image" in out and "truncated" in out
    assert not [p for p in Path("out").iterdir() if p.name.endswith(".part")]


def test_expired_links_are_refreshed_in_one_batch_for_a_user_token(world, capsys):
    w = world
    messages = [w.post(ago(hours=k + 1), f"c{k}.png") for k in range(3)]
    # the first image answer is slow; meanwhile every link issued so far expires
    w.emu.inject("slow", delay=0.8, path_contains="c0.png", times=1)

    def expire_after_the_page_is_read():
        deadline = time.monotonic() + 20
        while not api_requests(w.emu, "/messages") and time.monotonic() < deadline:
            time.sleep(0.01)
        w.emu.expire_links()

    expirer = threading.Thread(target=expire_after_the_page_is_read)
    expirer.start()
    code, out, err = run_main(capsys, *_by_id(w, "--days", "1"))
    expirer.join()
    assert code == 0, err
    assert len(images_in("out")) == 3
    assert any(r.status == 404 for r in cdn_requests(w.emu))
    # one POST /attachments/refresh-urls for the batch; never the bots-only single-message GET
    refreshes = api_requests(w.emu, "/attachments/refresh-urls")
    assert [(r.method, r.status) for r in refreshes] == [("POST", 200)]
    assert not any(api_requests(w.emu, f"/messages/{m['id']}") for m in messages)


def test_link_still_dead_after_refresh_is_an_error(world, capsys):
    w = world
    w.post(ago(hours=1), "gone.png")
    w.emu.inject("status", status=404, path_contains="gone.png", times=5)
    code, out, _ = run_main(capsys, *_by_id(w, "--days", "1"))
    assert code == 1
    assert "gone.png" in out and "still failing after refreshing the link" in out and images_in("out") == []
    assert len(api_requests(w.emu, "/attachments/refresh-urls")) == 1


def test_invalid_token_exits_2_without_printing_it(world, capsys, monkeypatch):
    bad = "tok-wrong-" + world.token[-4:]
    monkeypatch.setenv("DISCORD_USER_TOKEN", bad)
    code, out, err = run_main(capsys, *_by_id(world, "--days", "1"))
    assert code == 2
    assert err.startswith("error: invalid token") and err.count("\n") == 1
    assert bad not in out + err
    tried = [r.authorization for r in api_requests(world.emu)]
    assert tried == [bad, "Bot " + bad]  # bare, then as a bot token
    assert not Path("out").exists()  # no empty folder left behind by a failed start


def test_bot_token_kinds(monkeypatch, capsys):
    w = start_world(monkeypatch, kind="bot")
    try:
        w.post(ago(hours=1), "c.png")
        code, out, err = run_main(capsys, *_by_id(w, "--days", "1"))
        assert code == 0, err
        assert "(bot token)" in out
        assert {r.authorization for r in api_requests(w.emu)} == {"Bot " + w.token}
        # a bot token in DISCORD_USER_TOKEN: tried bare (401), then as Bot
        monkeypatch.delenv("DISCORD_BOT_TOKEN")
        monkeypatch.setenv("DISCORD_USER_TOKEN", w.token)
        w.emu.clear_log()
        code, out, err = run_main(capsys, "--channel", w.channel["id"], "--days", "1", "--output", "b")
        assert code == 0, err
        assert [r.status for r in api_requests(w.emu)][:2] == [401, 200]
        assert w.token not in out + err
    finally:
        w.emu.stop()


@pytest.mark.parametrize("argv, expected", [
    (["--channel", "999999999999999999"], "channel ID 999999999999999999 not found"),
    (["--channel", "spx-realtime", "--guild", GUILD], "near names: spx-realtime-aws"),
    (["--channel", "spx-realtime-aws", "--guild", "数学家炒"], "near names: 数学家炒美股"),
])
def test_unknown_channel_or_guild_exits_2_naming_what_was_searched(world, capsys, argv, expected):
    code, out, err = run_main(capsys, *argv, "--days", "1", "--output", "out")
    assert code == 2
    assert expected in err and err.startswith("error:")
    assert "Traceback" not in out + err
    assert not Path("out").exists()


def test_two_channels_with_the_name_are_listed_with_ids(world, capsys):
    twin = world.emu.add_channel(world.guild["id"], "spx-realtime-aws")
    code, _, err = run_main(capsys, "--channel", "spx-realtime-aws", "--guild", GUILD, "--days", "1")
    assert code == 2
    assert world.channel["id"] in err and twin["id"] in err


def test_channel_without_access_exits_2(world, capsys):
    hidden = world.emu.add_channel(world.guild["id"], "staff", accessible=False)
    code, _, err = run_main(capsys, "--channel", hidden["id"], "--days", "1")
    assert code == 2 and "no access" in err


def test_threads_are_included_with_the_flag(world, capsys):
    w = world
    w.post(ago(hours=2), "main.png")
    open_thread = w.emu.add_thread(w.channel["id"], "live")
    closed = w.emu.add_thread(w.channel["id"], "this morning", archived=True, archive_time=ago(minutes=30))
    old = w.emu.add_thread(w.channel["id"], "last week", archived=True, archive_time=ago(days=6))
    w.post(ago(hours=1), "in_thread.png", channel=open_thread)
    w.post(ago(hours=3), "in_archived.png", channel=closed)
    w.post(ago(days=7), "in_old_thread.png", channel=old)
    code, out, err = run_main(capsys, *_by_id(w, "--days", "1"))
    assert code == 0 and len(images_in("out")) == 1
    code, out, err = run_main(capsys, *_by_id(w, "--days", "1", "--threads"))
    assert code == 0, err
    assert sorted(n.split("_", 2)[2] for n in images_in("out")) == ["in_archived.png", "in_thread.png", "main.png"]
    assert "Channels and threads: 3" in out
    assert api_requests(w.emu, "/threads/search")  # the user-token endpoint
    # a thread archived before the window cannot hold newer messages: not read
    assert not api_requests(w.emu, f"/channels/{old['id']}/messages")


def test_threads_with_a_bot_token_use_the_bot_endpoints(monkeypatch, capsys):
    w = start_world(monkeypatch, kind="bot")
    try:
        thread = w.emu.add_thread(w.channel["id"], "live")
        closed = w.emu.add_thread(w.channel["id"], "old", archived=True, archive_time=ago(minutes=5))
        w.post(ago(hours=1), "t.png", channel=thread)
        w.post(ago(hours=2), "a.png", channel=closed)
        code, out, err = run_main(capsys, *_by_id(w, "--days", "1", "--threads"))
        assert code == 0, err
        assert len(images_in("out")) == 2
        assert api_requests(w.emu, "/threads/active") and api_requests(w.emu, "/threads/archived/public")
        assert not api_requests(w.emu, "/threads/search")
    finally:
        w.emu.stop()


def test_generated_channel_downloads_exactly_the_expected_images(world, capsys):
    w = world
    gen = generate_channel(w.emu, seed=5, days=8, image_size=(80, 50), channel_name="gen")
    code, out, err = run_main(capsys, "--channel", gen.channel["id"], "--days", "9", "--output", "gen")
    assert code == 0, err
    saved = digests("gen")
    assert len(saved) == gen.image_count
    assert sorted(saved.values()) == sorted(e.sha256 for e in gen.expected_images)
    with sqlite3.connect(Path("gen", config.ARCHIVE_FILE)) as db:
        rows = db.execute("SELECT filename, sha256 FROM downloads").fetchall()
    assert sorted(rows) == sorted(saved.items())
    _assert_token_secret(w, out + err, "gen")
    mask = os.umask(0o022)
    os.umask(mask)
    # readable like any file the user makes (the temp files are private)
    assert {Path("gen", n).stat().st_mode & 0o777 for n in saved} == {0o666 & ~mask}


def test_guild_list_is_paginated(world, capsys):
    w = world
    for k in range(205):
        w.emu.add_guild(f"server {k:03d}")
    late = w.emu.add_guild("Late Joined Desk")  # the highest ID: on the second page
    channel = w.emu.add_channel(late["id"], "charts")
    w.post(ago(hours=1), "late.png", channel=channel)
    code, out, err = run_main(capsys, "--channel", "charts", "--guild", "late joined desk", "--days", "1",
                              "--output", "out")
    assert code == 0, err
    pages = api_requests(w.emu, "/users/@me/guilds")
    assert len(pages) == 2 and pages[1].query.get("after")
    assert len(images_in("out")) == 1


def _one_line_error_without_token(code, out, err, token, expected):
    assert code == 1, out + err
    assert err.startswith("error:") and err.count("\n") == 1 and expected in err, err
    assert "Traceback" not in out + err and token not in out + err


def test_api_answers_that_are_not_discord_json_are_one_line_errors(world, capsys, fast_retries):
    w = world
    # a captive portal's page with a 200
    w.emu.inject("html", path_contains="/users/@me", times=1)
    code, out, err = run_main(capsys, *_by_id(w, "--days", "1"))
    _one_line_error_without_token(code, out, err, w.token, "not Discord's JSON (text/html)")
    # a 500 whose body echoes the request headers, token included, over several lines
    echo = f"proxy error\nAuthorization: {w.token}\nUser-Agent: x\n" + "padding " * 100
    w.emu.inject("status", status=500, message=echo, path_contains="/users/@me", times=config.MAX_RETRIES + 1)
    code, out, err = run_main(capsys, *_by_id(w, "--days", "1"))
    _one_line_error_without_token(code, out, err, w.token, "HTTP 500 proxy error Authorization: [token]")
    assert len(err) < 400


def test_unreachable_api_base_is_a_one_line_error(world, capsys, fast_retries, monkeypatch):
    import socket
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("DISCORD_API_BASE", f"http://127.0.0.1:{port}/api/v10")
    code, out, err = run_main(capsys, *_by_id(world, "--days", "1"))
    _one_line_error_without_token(code, out, err, world.token, "connection failed after 4 attempts")


def test_a_damaged_archive_is_a_one_line_error_and_is_left_alone(world, capsys):
    world.post(ago(hours=1), "c.png")
    Path("out").mkdir()
    damaged = Path("out", config.ARCHIVE_FILE)
    damaged.write_bytes(b"not a database " * 20)
    code, out, err = run_main(capsys, *_by_id(world, "--days", "1"))
    assert code == 2
    assert err.splitlines()[-1].startswith("error: cannot use the download archive")
    assert err.count("error:") == 1
    assert "Traceback" not in out + err and damaged.read_bytes() == b"not a database " * 20
    assert images_in("out") == []


def test_a_file_on_disk_that_goes_away_during_the_run_is_no_error(world, capsys):
    """A same-named file found at the start is compared with the download at
    the end; if the user moved it meanwhile, the download is simply saved."""
    w = world
    when = ago(hours=1).replace(microsecond=0)
    w.post(when, "chart.png")
    stamp = when.astimezone(__import__("zoneinfo").ZoneInfo(config.TIMEZONE)).strftime("%Y-%m-%d_%H-%M-%S")
    Path("out").mkdir()
    there = Path("out", f"{stamp}_chart.png")
    there.write_bytes(image_bytes(4242, (64, 48)))
    w.emu.inject("slow", delay=0.8, path_contains="chart.png", times=1)

    def move_it_away_once_the_page_is_read():
        deadline = time.monotonic() + 20
        while not api_requests(w.emu, "/messages") and time.monotonic() < deadline:
            time.sleep(0.01)
        there.rename(Path(f"{there.name}.moved"))

    mover = threading.Thread(target=move_it_away_once_the_page_is_read)
    mover.start()
    code, out, err = run_main(capsys, *_by_id(w, "--days", "1"))
    mover.join()
    assert code == 0, out + err
    assert images_in("out") == [f"{stamp}_chart_2.png"] and "Downloaded: 1" in out


def test_a_429_is_waited_out_for_its_retry_after(world, capsys):
    w = world
    w.post(ago(hours=1), "c.png")
    w.emu.inject("rate_limit", retry_after=0.4, path_contains="/messages", times=1)
    code, _, err = run_main(capsys, *_by_id(w, "--days", "1"))
    assert code == 0, err
    limited, retried = api_requests(w.emu, "/messages")[:2]
    assert limited.status == 429 and retried.status == 200
    assert retried.at - limited.at >= 0.35
    assert len(images_in("out")) == 1


def test_images_named_without_an_extension_get_one_so_later_steps_see_them(world, capsys):
    from discordpicextract import naming
    w = world
    photo = w.emu.host_image("F3xYz", image_bytes(61, (40, 30), "JPEG"), "image/jpeg")
    w.emu.add_message(w.channel["id"], ago(hours=2),
                      attachments=[("pasted", image_bytes(62, (40, 30)), "image/png")],
                      embeds=[{"type": "rich", "image": {"url": f"{photo}?format=jpg&name=large"}}])
    code, out, err = run_main(capsys, *_by_id(w, "--days", "1"))
    assert code == 0, err
    originals = sorted(n.split("_", 2)[2] for n in images_in("out"))
    assert originals == ["F3xYz.jpg", "pasted.png"]
    assert len(naming.list_images("out").images) == 2  # what dedupe and the others read


def test_a_failing_thread_listing_still_downloads_the_channel(world, capsys, fast_retries):
    w = world
    w.post(ago(hours=1), "main.png")
    w.emu.inject("status", status=502, path_contains="/threads/", times=config.MAX_RETRIES + 1)
    code, out, err = run_main(capsys, *_by_id(w, "--days", "1", "--threads"))
    assert code == 1, out + err
    assert [n.split("_", 2)[2] for n in images_in("out")] == ["main.png"]
    assert "ERROR listing threads" in out and "HTTP 502" in out
