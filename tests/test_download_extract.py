"""Pure parts of the downloader: which images a message holds, their archive
keys, their names (time zones, daylight saving, collisions), channel matching,
rate-limit bookkeeping. Messages come from the emulator's real JSON."""
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from download_helpers import GUILD, UTC, start_world
from helpers import image_bytes

from discordpicextract.discord import client, errors, extract, ratelimit, resolve, transfer
from discordpicextract.discord import plan as planning


@pytest.fixture
def w(monkeypatch):
    world = start_world(monkeypatch)
    yield world
    world.emu.stop()


def _png(seed):
    return image_bytes(seed, size=(32, 24))


def test_all_three_sources_and_forwarded_without_videos_or_text_files(w):
    emu = w.emu
    ext = emu.host_image("ext.png", _png(1))
    embedded = emu.host_image("embedded.png", _png(2))
    thumb = emu.host_image("thumb.jpg", _png(3))
    video_thumb = emu.host_image("video_thumb.png", _png(4))
    fwd = emu.host_image("fwd.webp", _png(5))
    message = emu.add_message(
        w.channel["id"], datetime(2026, 1, 5, 15, 0, tzinfo=UTC),
        content=f"look {ext}?width=10&x=1, and <{ext}?width=10&x=1> again; not an image https://example.com/page",
        attachments=[("image.png", _png(6), "image/png"), ("CHART.JPG", _png(7), None),
                     ("notes.txt", b"text", "text/plain")],
        embeds=[{"type": "rich", "image": {"url": embedded}, "thumbnail": {"url": thumb}},
                {"type": "video", "url": "https://example.com/v", "thumbnail": {"url": video_thumb}}],
        snapshots=[{"content": f"fwd {fwd}?s=1", "attachments": [("image.png", _png(8), "image/png")],
                    "embeds": []}])
    items = extract.extract_images(message)
    summary = [(i.source, i.original) for i in items]
    assert summary == [
        ("attachment", "image.png"), ("attachment", "CHART.JPG"),
        ("embed", "embedded.png"),   # a rich embed's image, not its small thumbnail beside it
        ("text", "ext.png"),
        ("attachment (forwarded)", "image.png"), ("text (forwarded)", "fwd.webp"),
    ]
    assert thumb not in {i.url for i in items}
    assert all(i.message_id == message["id"] for i in items)
    assert [i.index for i in items] == list(range(len(items)))
    text_item = items[3]
    assert text_item.url == f"{ext}?width=10&x=1"
    assert len({i.key for i in items}) == len(items)


def test_archive_key_ignores_the_link_signature_but_keeps_other_query():
    a = "http://cdn/attachments/1/2/image.png?ex=65&is=64&hm=abc&"
    b = "http://cdn/attachments/1/2/image.png?ex=99&is=98&hm=def&"
    assert extract.item_key("7", url=a) == extract.item_key("7", url=b)
    assert extract.item_key("7", url="http://x/a.png?w=1") != extract.item_key("7", url="http://x/a.png?w=2")
    assert extract.item_key("7", attachment_id="9") != extract.item_key("8", attachment_id="9")


def test_same_url_in_text_and_embed_is_one_item(w):
    url = w.emu.host_image("same.png", _png(9)) + "?q=1"
    message = w.emu.add_message(w.channel["id"], datetime(2026, 1, 5, tzinfo=UTC),
                                content=f"{url} and again {url}",
                                embeds=[{"type": "image", "url": url, "thumbnail": {"url": url}}])
    items = extract.extract_images(message)
    assert len(items) == 1
    # the embed's proxy copy first (another host), its origin as the fallback
    assert items[0].url.startswith("http://localhost:") and items[0].fallback == url


def _item(when, name="image.png", message_id=None, index=0):
    message_id = message_id or str(int(when.timestamp() * 1000))
    return extract.ImageItem(f"{message_id}/{index}", message_id, "1", when, "http://x/" + name,
                        name, "attachment", index)


@pytest.mark.parametrize("utc, expected", [
    # March 2026: EST (UTC-5) until Sunday 8 March 02:00, then EDT (UTC-4)
    (datetime(2026, 3, 6, 15, 0, 5, tzinfo=UTC), "2026-03-06_10-00-05_image.png"),
    (datetime(2026, 3, 9, 15, 0, 5, tzinfo=UTC), "2026-03-09_11-00-05_image.png"),
    # November 2026: EDT until Sunday 1 November 02:00, then EST
    (datetime(2026, 10, 30, 14, 0, 0, tzinfo=UTC), "2026-10-30_10-00-00_image.png"),
    (datetime(2026, 11, 2, 15, 0, 0, tzinfo=UTC), "2026-11-02_10-00-00_image.png"),
    # a message time with a fraction of a second is named by its whole second
    (datetime(2026, 11, 2, 15, 0, 0, 999000, tzinfo=UTC), "2026-11-02_10-00-00_image.png"),
])
def test_names_use_new_york_time_with_daylight_saving(utc, expected):
    [plan] = planning.plan_names([_item(utc)], set(), "America/New_York")
    assert plan.name == expected


def test_the_repeated_hour_of_the_november_change_keeps_both_images():
    first = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)   # 01:30 EDT
    second = datetime(2026, 11, 1, 6, 30, tzinfo=UTC)  # 01:30 EST, an hour later
    plans = planning.plan_names([_item(second), _item(first)], set(), "America/New_York")
    assert [p.name for p in plans] == ["2026-11-01_01-30-00_image.png", "2026-11-01_01-30-00_image_2.png"]
    assert plans[0].item.posted == first


def test_collisions_are_numbered_in_posting_order_and_avoid_existing_names():
    when = datetime(2026, 2, 2, 15, 0, 0, tzinfo=UTC)
    items = [_item(when + timedelta(milliseconds=600), message_id="30"),
             _item(when + timedelta(milliseconds=100), message_id="10"),
             _item(when + timedelta(milliseconds=100), message_id="10", index=1),
             _item(when + timedelta(milliseconds=300), name="IMAGE.png", message_id="20")]
    existing = {"2026-02-02_10-00-00_image_2.png"}
    plans = planning.plan_names(items, existing, "America/New_York")
    names = {(p.item.message_id, p.item.index): p.name for p in plans}
    assert names == {
        ("10", 0): "2026-02-02_10-00-00_image.png",
        ("10", 1): "2026-02-02_10-00-00_image_3.png",      # _2 is taken on disk
        ("20", 0): "2026-02-02_10-00-00_IMAGE_4.png",      # same name on a case-insensitive disk
        ("30", 0): "2026-02-02_10-00-00_image_5.png",
    }
    again = planning.plan_names(list(reversed(items)), existing, "America/New_York")
    assert [p.name for p in again] == [p.name for p in plans]


@pytest.mark.parametrize("base, repeat_after", [
    (datetime(2026, 4, 1, 14, 0, 0, tzinfo=UTC), None),
    # 01:30 EDT, then the same wall time again an hour later in EST
    (datetime(2026, 11, 1, 5, 30, 0, tzinfo=UTC), timedelta(hours=1)),
])
def test_names_do_not_depend_on_where_pages_break(w, base, repeat_after):
    """Several image.png in one second (or one wall-clock second twice, when
    clocks go back), split over pages at every point: the same names come out
    as when everything is planned at once."""
    messages = [w.post(base + timedelta(milliseconds=100 * k), "image.png", seed=k) for k in range(6)]
    messages += [w.post(base - timedelta(seconds=k), "image.png", seed=50 + k) for k in range(1, 4)]
    if repeat_after:
        messages += [w.post(base + repeat_after - timedelta(minutes=k), "image.png", seed=80 + k)
                     for k in (0, 10, 20)]
    newest_first = sorted(messages, key=lambda m: int(m["id"]), reverse=True)
    zone = ZoneInfo("America/New_York")
    everything = {p.item.key: p.name for p in
                  planning.plan_names([i for m in messages for i in extract.extract_images(m)], set(), zone)}
    for split in range(1, len(newest_first)):
        pages = [newest_first[:split], newest_first[split:]]
        taken, names = set(), {}
        for items, _count in planning.release_batches(pages, zone):
            for plan in planning.plan_names(items, taken, zone):
                taken.add(plan.name)
                names[plan.item.key] = plan.name
        assert names == everything, f"page break after {split} messages"
    assert len(set(everything.values())) == len(everything)


def test_channel_and_guild_matching():
    guilds = [{"id": "1", "name": GUILD}, {"id": "2", "name": "Options Desk"}]
    assert resolve.match_guild(guilds, "  数学家炒美股 ")["id"] == "1"
    assert resolve.match_guild(guilds, "options desk")["id"] == "2"
    with pytest.raises(errors.NotFoundError, match="near names: 数学家炒美股"):
        resolve.match_guild(guilds, "数学家炒美")
    channels = [{"id": "10", "name": "spx-realtime-aws", "type": 0},
                {"id": "11", "name": "spx-realtime", "type": 0},
                {"id": "12", "name": "Charts", "type": 4},  # a category: never a match
                {"id": "13", "name": "charts", "type": 0}, {"id": "14", "name": "charts", "type": 5}]
    assert resolve.match_channel(channels, "#SPX-realtime-aws")["id"] == "10"
    with pytest.raises(errors.AmbiguousError) as both:
        resolve.match_channel(channels, "charts")
    assert "ID 13" in str(both.value) and "ID 14" in str(both.value)
    with pytest.raises(errors.NotFoundError) as missing:
        resolve.match_channel(channels, "spx-realtime-aw", GUILD)
    assert "spx-realtime-aws" in str(missing.value) and GUILD in str(missing.value)


def test_route_keys_follow_discord_major_parameters():
    assert ratelimit.route_key("GET", "/channels/123456/messages") == ("GET /channels/{major}/messages", "123456")
    assert ratelimit.route_key("GET", "/channels/123456/messages/987654") == \
        ("GET /channels/{major}/messages/{id}", "123456")
    assert ratelimit.route_key("GET", "/users/@me/guilds") == ("GET /users/@me/guilds", "")


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def test_rate_limiter_waits_for_an_empty_bucket_and_caps_absurd_waits():
    clock, capped = FakeClock(), []
    limiter = ratelimit.RateLimiter(min_delay=1, max_wait=5, clock=clock, sleep=clock.sleep,
                             on_cap=lambda wait, cap, route: capped.append((wait, cap)))
    route = ratelimit.route_key("GET", "/channels/1/messages")
    limiter.acquire(route)
    limiter.update(route, {"X-RateLimit-Bucket": "b", "X-RateLimit-Remaining": "1",
                           "X-RateLimit-Reset-After": "2.5"})
    limiter.acquire(route)          # one left: no wait
    assert clock.slept == []
    limiter.acquire(route)          # bucket empty: wait for the reset
    assert sum(clock.slept) == pytest.approx(2.5)
    other = ratelimit.route_key("GET", "/channels/2/messages")  # another channel: its own bucket
    limiter.update(other, {"X-RateLimit-Bucket": "b", "X-RateLimit-Remaining": "0",
                           "X-RateLimit-Reset-After": "3600"})
    clock.slept.clear()
    limiter.acquire(other)
    assert sum(clock.slept) == pytest.approx(5) and capped == [(3600, 5)]


def test_rate_limiter_spaces_calls_when_the_api_sends_no_headers():
    clock = FakeClock()
    limiter = ratelimit.RateLimiter(min_delay=1, max_wait=60, clock=clock, sleep=clock.sleep)
    route = ratelimit.route_key("GET", "/users/@me")
    for _ in range(3):
        limiter.acquire(route)
        limiter.update(route, {})
    assert sum(clock.slept) == pytest.approx(2)


def test_parse_time_accepts_discord_timestamps():
    assert extract.parse_time("2026-01-05T15:00:00.123+00:00") == datetime(2026, 1, 5, 15, 0, 0, 123000, tzinfo=UTC)
    assert extract.parse_time("2026-01-05T15:00:00Z") == datetime(2026, 1, 5, 15, tzinfo=timezone.utc)
    assert extract.parse_time("2026-01-05T10:00:00.5-05:00") == datetime(2026, 1, 5, 15, 0, 0, 500000, tzinfo=UTC)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_only_complete_decodable_images_pass_verification(tmp_path, fmt):
    whole = image_bytes(21, size=(300, 200), fmt=fmt)
    good = tmp_path / "good"
    good.write_bytes(whole)
    transfer.verify_image(good)  # no exception
    cut = tmp_path / "cut"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(transfer.BadBody, match="not a decodable image"):
        transfer.verify_image(cut)
    page = tmp_path / "page"
    page.write_bytes(b"<!DOCTYPE html><html><body>Something went wrong</body></html>")
    with pytest.raises(transfer.BadBody, match="text/html"):
        transfer.verify_image(page, "text/html")


def test_scrub_masks_the_token_also_as_a_repr_shows_it():
    token = "tok-\nsecret\\x"
    text = f"Invalid header value: {token!r} / raw {token}"
    scrubbed = client.scrub(text, token)
    assert "secret" not in scrubbed and scrubbed.count("[token]") == 2


def test_rate_limit_values_that_are_no_number_fall_back_instead_of_crashing():
    """An HTTP-date Retry-After, a string retry_after, a "nan" reset from a
    proxy: waited as 1 s / ignored, never a ValueError from float() or sleep()."""
    import http.server
    import json
    import threading

    answers = [
        (429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, {"retry_after": "soon", "global": False}),
        (200, {"X-RateLimit-Bucket": "b", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "nan"},
         {"id": "1"}),
        (200, {}, {"id": "2"}),
    ]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status, headers, body = answers.pop(0)
            data = json.dumps(body).encode()
            self.send_response(status)
            for name, value in {**headers, "Content-Type": "application/json",
                                "Content-Length": str(len(data))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        api = client.DiscordClient("tok-" + "x" * 8, "user", api_base=f"http://127.0.0.1:{server.server_port}/api")
        assert api.request("/users/@me") == {"id": "1"}  # after the 429, waited the 1 s fallback
        assert api.request("/users/@me") == {"id": "2"}  # the "nan" reset was ignored
        assert answers == []
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("name, content_type, url, expected", [
    ("chart.png", None, "", "chart.png"),
    ("pasted", "image/jpeg", "", "pasted.jpg"),
    ("F3xYz", None, "https://x.test/media/F3xYz?format=webp&name=small", "F3xYz.webp"),
    ("F3xYz.jpg:large", None, "", "F3xYz.jpg:large.jpg"),
    ("unknown", None, "", "unknown.png"),
])
def test_names_always_end_in_an_image_extension(name, content_type, url, expected):
    assert extract.with_image_extension(name, content_type, url) == expected
