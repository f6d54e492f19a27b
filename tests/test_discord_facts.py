"""Today's Discord (issues 10 and 16, discord-facts-2026.md), through
discord_downloader.main(argv) against the emulator answering as the facts
sheet says: User-Agent by token kind, Components V2, forum and media
channels, link refresh for user tokens, embeds, names and formats, bans and
blocks, the Message Content intent, links and date bounds, the user-token
warning, stops on 401 and 40002, IS_THUMBNAIL, a thread's starter message."""
import sys
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from download_helpers import ago, api_requests, cdn_requests, images_in, sha256_of, start_world
from helpers import image_bytes

import config
import discord_downloader
from discordpicextract import messages
from discordpicextract.emulator.components import container, file, gallery, section, text


def _run(capsys, *argv):
    code = discord_downloader.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _by_id(w, *extra, channel=None):
    return ["--channel", (channel or w.channel)["id"], "--days", "1", "--output", "out", "--no-progress", *extra]


def _originals(folder="out"):
    return sorted(n.split("_", 2)[2] for n in images_in(folder))


def _png(seed, size=(40, 30)):
    return image_bytes(seed, size)


@pytest.fixture
def bot(monkeypatch):
    w = start_world(monkeypatch, kind="bot")
    yield w
    w.emu.stop()


def _after(records, index):
    """API requests answered after the one at `index` of `records`."""
    return [r for r in records[index + 1:] if r.server == "api"]


# ---------------------------------------------------------------- 1. User-Agent

def test_a_bot_token_announces_its_library_on_the_api_and_the_cdn(bot, capsys):
    bot.post(ago(hours=1), "b.png")
    code, _, err = _run(capsys, *_by_id(bot))
    assert code == 0, err
    assert {r.user_agent for r in bot.emu.requests} == {config.USER_AGENT}
    assert config.USER_AGENT.startswith("DiscordBot (https://") and cdn_requests(bot.emu)


def test_a_user_token_sends_no_user_agent(world, capsys):
    world.post(ago(hours=1), "u.png")
    code, _, err = _run(capsys, *_by_id(world))
    assert code == 0, err
    assert {r.user_agent for r in world.emu.requests} == {None} and cdn_requests(world.emu)


# ---------------------------------------------------------------- 2. Components V2

def test_components_v2_media_in_messages_and_forwards_deduplicated(world, capsys):
    w = world
    a, b, thumb, fwd = (("a.png", _png(1), "image/png"), ("b.png", _png(2), "image/png"),
                        ("t.png", _png(3), "image/png"), ("f.png", _png(4), "image/png"))
    posted = w.emu.add_message(w.channel["id"], ago(hours=2), components=[container(
        text("SPX levels"), gallery(a, b), section("close", thumb), file(("notes.txt", b"5800", "text/plain")))])
    assert posted["flags"] & (1 << 15) and posted["attachments"] == []   # Discord lists no referenced upload
    media = posted["components"][0]["components"][1]["items"][0]["media"]
    assert media["attachment_id"] and media["url"].startswith(w.emu.cdn_base + "/attachments/")
    w.emu.add_message(w.channel["id"], ago(hours=1), content="fwd",
                      snapshots=[{"content": "", "components": [gallery(fwd)]}])
    w.emu.add_message(w.channel["id"], ago(minutes=50), components=[gallery(("c.png", _png(5), "image/png"))])
    code, out, err = _run(capsys, *_by_id(w))
    assert code == 0, err
    assert _originals() == ["a.png", "b.png", "c.png", "f.png", "t.png"]
    assert "notes.txt" not in str(cdn_requests(w.emu))
    assert len(cdn_requests(w.emu)) == 5


# ---------------------------------------------------------------- 3. forum and media channels, types

def test_a_forum_by_name_is_read_through_its_posts_and_a_category_is_an_error(world, capsys):
    w = world
    forum = w.emu.add_channel(w.guild["id"], "chart-forum", kind=15)
    w.emu.add_forum_post(forum["id"], "monday", ago(hours=3), attachments=[("post.png", _png(6), "image/png")])
    thread, _ = w.emu.add_forum_post(forum["id"], "tuesday", ago(hours=2), content="first")
    w.post(ago(hours=1), "reply.png", channel=thread)
    code, out, err = _run(capsys, "--channel", "chart-forum", "--guild", w.guild["name"], "--days", "1",
                          "--output", "out", "--no-progress")
    assert code == 0, err
    assert _originals() == ["post.png", "reply.png"] and "forum" in out
    assert not api_requests(w.emu, f"/channels/{forum['id']}/messages")    # no messages of its own
    category = w.emu.add_channel(w.guild["id"], "Charts", kind=4)
    code, _, err = _run(capsys, "--channel", category["id"], "--days", "1", "--output", "cat")
    assert code == 2 and "is a category, which holds no messages" in err and not Path("cat").exists()


def test_a_media_channel_post_with_its_grid_thumbnail_saves_one_image(bot, capsys):
    w = bot
    media = w.emu.add_channel(w.guild["id"], "charts-media", kind=16)
    full = _png(7, (120, 80))
    w.emu.add_forum_post(media["id"], "spx", ago(hours=1), attachments=[
        ("spx.png", full, "image/png"), ("spx_thumb.png", _png(7, (36, 24)), "image/png", {"flags": 1 << 1})],
        snapshots=[{"content": "", "attachments": [("old_thumb.png", _png(8), "image/png", {"flags": 2})]}])
    code, out, err = _run(capsys, *_by_id(w, channel=media))
    assert code == 0, err
    [name] = images_in("out")
    assert name.endswith("_spx.png") and sha256_of(Path("out", name)) == __import__("hashlib").sha256(full).hexdigest()
    assert "Skipped (media-channel grid thumbnails): 2" in out


# ---------------------------------------------------------------- 4. threads for bots

def test_private_archived_threads_are_read_when_allowed_and_a_403_is_tolerated(monkeypatch, capsys):
    for allowed in (False, True):
        w = start_world(monkeypatch, kind="bot", manage_threads=allowed)
        try:
            private = w.emu.add_thread(w.channel["id"], "mods", archived=True, archive_time=ago(hours=1),
                                       created=ago(hours=5), private=True)
            w.post(ago(hours=2), "private.png", channel=private)
            w.post(ago(hours=1), "main.png")
            code, out, err = _run(capsys, *_by_id(w, "--threads", "--output", f"out{allowed}"))
            assert code == 0, err
            assert _originals(f"out{allowed}") == (["main.png", "private.png"] if allowed else ["main.png"])
            assert api_requests(w.emu, "/threads/archived/private")
            assert ("Manage Threads" in out) is (not allowed)
        finally:
            w.emu.stop()


# ---------------------------------------------------------------- 5. link refresh

def test_a_stale_link_pasted_in_text_is_refreshed_for_a_user_token(world, capsys):
    w = world
    png = _png(9)
    stale = w.emu.stale_link(w.channel["id"], "pasted.png", png)
    w.emu.add_message(w.channel["id"], ago(hours=1), content=f"yesterday's chart {stale}")
    code, out, err = _run(capsys, *_by_id(w))
    assert code == 0, err
    [name] = images_in("out")
    assert name.endswith("_pasted.png") and Path("out", name).read_bytes() == png
    assert [r.status for r in api_requests(w.emu, "/attachments/refresh-urls")] == [200]


def test_when_refresh_urls_fails_the_message_is_read_again_around_its_id(world, capsys):
    w = world
    posted = w.post(ago(hours=1), "again.png")
    w.emu.inject("status", status=404, path_contains="again.png")   # the CDN: link expired
    w.emu.inject("status", status=404, message="404: Not Found", path_contains="refresh-urls")
    code, out, err = _run(capsys, *_by_id(w))
    assert code == 0, err
    assert _originals() == ["again.png"]
    [reread] = [r for r in api_requests(w.emu, "/messages") if "around" in r.query]
    assert reread.query == {"around": posted["id"], "limit": "1"}
    assert not api_requests(w.emu, f"/messages/{posted['id']}")


def test_a_refused_re_read_is_reported_as_refused(world, capsys):
    w = world
    w.post(ago(hours=1), "refused.png")
    w.emu.inject("status", status=404, path_contains="refused.png")   # the CDN: link expired
    w.emu.inject("status", status=404, message="404: Not Found", path_contains="refresh-urls")
    w.emu.inject("status", status=403, message="Missing Access", code=50001, skip=1,   # after the page read
                 path_contains=f"/channels/{w.channel['id']}/messages")
    code, out, err = _run(capsys, *_by_id(w))
    assert code == 1
    assert "refused.png" in out and "re-reading its message failed" in out and "HTTP 403 Missing Access" in out
    assert "no longer holds it" not in out


# ---------------------------------------------------------------- 6. embeds

def test_embeds_proxy_first_origin_as_fallback_image_over_thumbnail(world, capsys):
    w = world
    gone = w.emu.host_image("gone_origin.png", _png(10))
    blocked = w.emu.host_image("proxy_down.png", _png(11))
    image, small = w.emu.host_image("rich.png", _png(12)), w.emu.host_image("rich_thumb.png", _png(13))
    w.emu.add_message(w.channel["id"], ago(hours=1), embeds=[
        {"type": "image", "url": gone, "thumbnail": {"url": gone}},
        {"type": "image", "url": blocked, "thumbnail": {"url": blocked}},
        {"type": "rich", "title": "levels", "image": {"url": image}, "thumbnail": {"url": small}}])
    gone_path, blocked_path = (url.split("/external", 1)[1] for url in (gone, blocked))
    w.emu.inject("status", status=404, path_contains="/external" + gone_path, times=5)     # an origin is gone
    w.emu.inject("status", status=404, path_contains="/images-ext" + blocked_path, times=5)  # a proxy copy fails
    code, out, err = _run(capsys, *_by_id(w))
    assert code == 0, err
    assert _originals() == ["gone_origin.png", "proxy_down.png", "rich.png"]
    assert not any("rich_thumb" in r.path for r in cdn_requests(w.emu))
    tried = [r.path.split("/")[1] for r in cdn_requests(w.emu) if r.path.endswith("/proxy_down.png")]
    assert tried == ["images-ext", "external"]   # the proxy copy first, then the origin


# ---------------------------------------------------------------- 7. names and formats

def test_title_names_media_proxy_links_and_the_decoded_format(world, capsys, monkeypatch):
    w = world
    png, jpeg = _png(14), image_bytes(15, (40, 30), fmt="JPEG")
    w.emu.add_message(w.channel["id"], ago(hours=2), attachments=[
        ("__.png", _png(16), "image/png", {"title": "图表 收盘"}), ("chart.png", jpeg, "image/png")])
    cdn_host = w.emu.cdn_base.split("//", 1)[1]
    media_host = cdn_host.replace("127.0.0.1", "localhost")   # stands for media.discordapp.net
    monkeypatch.setattr(config, "MEDIA_PROXY_HOSTS", {media_host: cdn_host})
    stored = w.emu.add_message(w.channel["id"], ago(hours=5), attachments=[("whole.png", png, "image/png")])
    url = stored["attachments"][0]["url"].replace(cdn_host, media_host)
    w.emu.add_message(w.channel["id"], ago(hours=1), content=f"see {url}format=webp&width=20&height=15")
    code, out, err = _run(capsys, *_by_id(w, "--days", "0.2"))
    assert code == 0, err
    assert _originals() == ["chart.jpg", "whole.png", "图表 收盘.png"]
    [whole] = [n for n in images_in("out") if n.endswith("_whole.png")]
    assert Path("out", whole).read_bytes() == png   # the file itself, not the proxy's resized WebP
    [fetched] = [r for r in cdn_requests(w.emu) if r.path.endswith("/whole.png")]
    assert not {"format", "width", "height"} & set(fetched.query)


# ---------------------------------------------------------------- 8. bans, blocks, limits

@pytest.mark.parametrize("kind, shape", [("ban", "json"), ("ban", "cloudflare"), ("ban", "html"), ("block", None)])
def test_a_ban_or_block_stops_the_run_at_its_first_answer(world, capsys, kind, shape):
    w = world
    threads = [w.emu.add_thread(w.channel["id"], f"t{k}", created=ago(hours=3)) for k in range(3)]
    for thread in threads:
        w.post(ago(hours=1), "t.png", channel=thread)
    w.emu.inject(kind, path_contains=f"/channels/{threads[0]['id']}/messages", **({"shape": shape} if shape else {}))
    code, out, err = _run(capsys, *_by_id(w, "--threads"))
    assert code == 1
    lines = [line for line in err.splitlines() if line != discord_downloader.USER_TOKEN_WARNING]
    assert len(lines) == 1 and ("refuses this IP" in lines[0] or "Cloudflare blocks" in lines[0]), err
    records = w.emu.requests
    first = next(i for i, r in enumerate(records) if r.status in (429, 403))
    assert _after(records, first) == []   # nothing more, none per remaining thread


def test_invalid_answers_are_counted_and_the_run_stops_long_before_the_ip_ban(world, capsys, monkeypatch):
    w = world
    monkeypatch.setattr(config, "MAX_INVALID_REQUESTS", 4)
    threads = [w.emu.add_thread(w.channel["id"], f"t{k}", created=ago(hours=3)) for k in range(8)]
    for thread in threads:
        w.post(ago(hours=1), "t.png", channel=thread)
        w.emu.inject("status", status=403, message="Missing Access", code=50001,
                     path_contains=f"/channels/{thread['id']}/messages")
    code, out, err = _run(capsys, *_by_id(w, "--threads"))
    assert code == 1 and "4 invalid answers (401/403/429)" in err
    assert w.emu.count_status(403) == 4


def test_a_long_shared_limit_skips_that_thread_with_a_warning(world, capsys):
    w = world
    busy, calm = (w.emu.add_thread(w.channel["id"], name, created=ago(hours=3)) for name in ("busy", "calm"))
    w.post(ago(hours=1), "busy.png", channel=busy)
    w.post(ago(hours=1), "calm.png", channel=calm)
    w.emu.inject("rate_limit", path_contains=f"/channels/{busy['id']}/messages", retry_after=300, scope="shared")
    code, out, err = _run(capsys, *_by_id(w, "--threads"))
    assert code == 0, err
    assert _originals() == ["calm.png"]
    assert "WARNING #busy skipped: " in out and "a shared rate limit" in out


# ---------------------------------------------------------------- 9. Message Content intent

def test_a_bot_without_the_message_content_intent_is_told_so(monkeypatch, capsys):
    w = start_world(monkeypatch, kind="bot", message_content=False)
    try:
        w.post(ago(hours=1), "hidden.png")
        code, _, err = _run(capsys, *_by_id(w))
        assert code == 2 and "enable the Message Content intent" in err
        assert len(api_requests(w.emu, "/applications/@me")) == 1
        assert not Path("out").exists()   # nothing saved: the folder it made is gone again
    finally:
        w.emu.stop()


# ---------------------------------------------------------------- 10. links, bounds, token

def test_channel_and_thread_links_as_copy_link_gives_them(world, capsys):
    w = world
    w.post(ago(hours=2), "by_link.png")
    thread = w.emu.add_thread(w.channel["id"], "t", created=ago(hours=3))
    w.post(ago(hours=1), "in_thread.png", channel=thread)
    link = f"https://discord.com/channels/{w.guild['id']}/{w.channel['id']}"
    code, _, err = _run(capsys, "--channel", link, "--days", "1", "--output", "a", "--no-progress")
    assert code == 0, err
    assert _originals("a") == ["by_link.png"]
    code, _, err = _run(capsys, "--channel", f"https://discord.com/channels/{w.guild['id']}/{thread['id']}",
                        "--days", "1", "--output", "b", "--no-progress")
    assert code == 0, err
    assert _originals("b") == ["in_thread.png"]
    # pasted from an address bar without its scheme: still the channel's link
    code, _, err = _run(capsys, "--channel", f"discord.com/channels/{w.guild['id']}/{w.channel['id']}",
                        "--days", "1", "--output", "c", "--no-progress")
    assert code == 0, err
    assert _originals("c") == ["by_link.png"]


@pytest.mark.parametrize("link", [
    "https://discord.com/channels/abc/def",
    "https://example.com/channels/1288073537541636096/1324312324101636096",
    "https://discord.com/channels/1288073537541636096/12345",
])
def test_a_malformed_channel_link_is_a_one_line_error_not_a_channel_name(world, capsys, link):
    code, out, err = _run(capsys, "--channel", link, "--guild", "G", "--days", "1", "--output", "a",
                          "--no-progress")
    assert code == 2
    assert "not a Discord channel link" in err and "Traceback" not in err
    assert api_requests(world.emu, "/channels") == [] and api_requests(world.emu, "/guilds") == []


def test_after_before_as_dates_or_message_ids(world, capsys):
    w = world
    zone = ZoneInfo(config.TIMEZONE)
    day = (ago(days=5).astimezone(zone)).replace(hour=12, minute=0, second=0, microsecond=0)
    early = w.post(day - timedelta(days=1), "early.png")
    middle = w.post(day, "middle.png")
    w.post(day + timedelta(days=2), "late.png")
    start, end = day.date().isoformat(), (day + timedelta(days=1)).date().isoformat()
    code, out, err = _run(capsys, "--channel", w.channel["id"], "--after", start, "--before", end,
                          "--output", "dates", "--no-progress")
    assert code == 0, err
    assert _originals("dates") == ["middle.png"]
    code, _, err = _run(capsys, "--channel", w.channel["id"], "--after", early["id"], "--before",
                        str(int(middle["id"]) + 1), "--output", "ids", "--no-progress")
    assert code == 0, err
    assert _originals("ids") == ["middle.png"]
    code, _, err = _run(capsys, "--channel", w.channel["id"], "--after", "yesterday", "--output", "x")
    assert code == 2 and "not a date (yyyy-mm-dd) or a message ID" in err


def test_since_last_makes_one_page_request_when_nothing_is_new(world, capsys):
    w = world
    for k in range(3):
        w.post(ago(hours=5 - k), f"c{k}.png")
    assert _run(capsys, *_by_id(w))[0] == 0
    w.emu.clear_log()
    code, out, err = _run(capsys, *_by_id(w, "--since-last"))
    assert code == 0, err
    assert len(api_requests(w.emu, "/messages")) == 1 and "Downloaded: 0" in out
    w.post(ago(minutes=5), "new.png")
    code, out, err = _run(capsys, *_by_id(w, "--since-last"))
    assert code == 0 and "Downloaded: 1" in out and "Skipped (already downloaded): 0" in out


def test_a_forbidden_channel_found_by_name_says_no_access_and_leaves_no_folder(world, capsys):
    w = world
    w.emu.add_channel(w.guild["id"], "staff", accessible=False)
    code, _, err = _run(capsys, "--channel", "staff", "--guild", w.guild["name"], "--days", "1", "--output", "out")
    assert code == 2 and "error: no access to channel" in err and not Path("out").exists()


# ---------------------------------------------------------------- 11. progress

def test_the_progress_bar_shows_no_percentage_until_paging_has_ended(world, monkeypatch, capsys):
    """Through main(argv) on a (pretended) terminal: 250 messages on three
    pages; while they are read the bar counts messages and images with no
    percentage, and only once paging has ended does it show one."""
    for k in range(250):
        world.emu.add_message(world.channel["id"], ago(minutes=300 - k),
                              attachments=[(f"c{k}.png", _png(k % 5), "image/png")] if k % 50 == 0 else ())
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, _, err = _run(capsys, "--channel", world.channel["id"], "--days", "1", "--output", "out")
    assert code == 0, err
    frames = [f for f in err.replace("\n", "\r").split("\r") if f.startswith("Downloading")]
    paging = [f for f in frames if "images found" in f]
    assert any("100 messages read" in f for f in paging) and any("200 messages read" in f for f in paging)
    assert paging and not any("%" in f for f in paging)
    assert "100%" in frames[-1] and "250 messages read" in frames[-1]


# ---------------------------------------------------------------- issue 16

def test_a_user_token_run_warns_once_even_under_q(world, capsys):
    world.post(ago(hours=1), "u.png")
    code, out, err = _run(capsys, *_by_id(world, "-q"))
    assert code == 0 and err.count(discord_downloader.USER_TOKEN_WARNING) == 1
    assert err.splitlines() == [discord_downloader.USER_TOKEN_WARNING]


def test_a_bot_token_run_does_not_warn(bot, capsys):
    bot.post(ago(hours=1), "b.png")
    code, out, err = _run(capsys, *_by_id(bot))
    assert code == 0 and err == ""


@pytest.mark.parametrize("status, code, said", [(401, 0, "the token is no longer valid"),
                                                (403, 40002, "must be verified in the Discord app")])
def test_a_401_or_40002_mid_run_stops_with_no_further_request(world, capsys, status, code, said):
    w = world
    threads = [w.emu.add_thread(w.channel["id"], f"t{k}", created=ago(hours=3)) for k in range(3)]
    for thread in threads:
        w.post(ago(hours=1), "t.png", channel=thread)
    w.emu.inject("status", status=status, code=code, message="stop",
                 path_contains=f"/channels/{threads[1]['id']}/messages")
    exit_code, out, err = _run(capsys, *_by_id(w, "--threads"))
    assert exit_code == 1 and said in err
    records = w.emu.requests
    stop = next(i for i, r in enumerate(records) if r.status == status)
    assert _after(records, stop) == []


def test_a_thread_link_saves_its_starter_message_image_once(world, capsys):
    w = world
    starter = w.post(ago(hours=2), "starter.png")
    thread = w.emu.add_thread(w.channel["id"], "discussion", from_message=starter["id"])
    w.post(ago(hours=1), "reply.png", channel=thread)
    link = f"https://discord.com/channels/{w.guild['id']}/{thread['id']}"
    for _ in range(2):
        code, out, err = _run(capsys, "--channel", link, "--days", "1", "--output", "out", "--no-progress")
        assert code == 0, err
    assert _originals() == ["reply.png", "starter.png"]
    arounds = [r for r in api_requests(w.emu, f"/channels/{w.channel['id']}/messages") if "around" in r.query]
    assert arounds and all(r.query == {"around": starter["id"], "limit": "1"} for r in arounds)


def test_a_forward_is_named_by_the_forwards_time(world, capsys):
    w = world
    original = ago(days=30)
    forwarded = ago(hours=1)
    w.emu.add_message(w.channel["id"], forwarded, content="fwd", snapshots=[
        {"content": "", "attachments": [("fwd.png", _png(17), "image/png")], "timestamp": original}])
    code, _, err = _run(capsys, *_by_id(w))
    assert code == 0, err
    [name] = images_in("out")
    stamp = forwarded.astimezone(ZoneInfo(config.TIMEZONE)).strftime("%Y-%m-%d_%H-%M-%S")
    assert name == f"{stamp}_fwd.png"
    # messages.csv records both times: the forward's, and the original post's
    [row] = messages.read_rows("out")
    assert row["source"] == "forward" and row["posted_at"] == messages.posted_at(forwarded)
    assert row["original_posted_at"] == messages.posted_at(original)
