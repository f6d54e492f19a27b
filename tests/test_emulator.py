"""The Discord emulator: real HTTP against it, its JSON checked against Discord's OpenAPI schemas."""
import copy
import hashlib
import json
import random
import secrets
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import requests
from helpers import ROOT, SHARED_SPEC, image_bytes

from discordpicextract.emulator import (
    DiscordEmulator,
    build_demo_channel,
    generate_channel,
    snowflake_for,
    snowflake_time,
)

UTC = timezone.utc
NY = ZoneInfo("America/New_York")


def fake_token():
    return "tok-" + secrets.token_hex(8)


def session_for(emu, bot=False):
    s = requests.Session()
    s.headers["Authorization"] = ("Bot " if bot else "") + emu.token
    return s


def world(emu, count=0, start=datetime(2024, 3, 8, 14, 30, tzinfo=UTC), step=timedelta(seconds=37)):
    guild = emu.add_guild("数学家炒美股")
    channel = emu.add_channel(guild["id"], "spx-realtime-aws")
    for i in range(count):
        emu.add_message(channel["id"], start + step * i, content=f"m{i}")
    return guild, channel


def get_json(s, emu, path, **params):
    r = s.get(emu.api_base + path, params=params)
    return r.status_code, r.json()


# ---------------------------------------------------------------- snowflakes and tokens

def test_snowflake_matches_discord_documented_example():
    # Discord's docs: 175928847299117063 was made at 2016-04-30 11:18:25.796 UTC
    assert snowflake_time(175928847299117063) == datetime(2016, 4, 30, 11, 18, 25, 796000, tzinfo=UTC)
    when = datetime(2024, 11, 3, 6, 30, 1, 250000, tzinfo=UTC)
    assert snowflake_time(snowflake_for(when, 7)) == when
    assert snowflake_for(when, 7) & 0xFFF == 7


def test_token_check_on_every_route(emulator):
    guild, channel = world(emulator, 1)
    good = session_for(emulator)
    assert good.get(emulator.api_base + "/users/@me").json()["id"] == emulator.me["id"]
    paths = ["/users/@me", "/users/@me/guilds", f"/guilds/{guild['id']}/channels",
             f"/channels/{channel['id']}", f"/channels/{channel['id']}/messages", "/channels/1/messages"]
    for auth in (None, "wrong", "Bot " + emulator.token, emulator.token + "x"):
        headers = {"Authorization": auth} if auth else {}
        for path in paths:
            r = requests.get(emulator.api_base + path, headers=headers)
            assert r.status_code == 401, (auth, path)
            assert r.json() == {"message": "401: Unauthorized", "code": 0}


def test_bot_kind_wants_bot_prefix():
    with DiscordEmulator(token=fake_token(), token_kind="bot") as emu:
        bare = requests.get(emu.api_base + "/users/@me", headers={"Authorization": emu.token})
        assert bare.status_code == 401
        me = session_for(emu, bot=True).get(emu.api_base + "/users/@me")
        assert me.status_code == 200 and me.json()["bot"] is True


# ---------------------------------------------------------------- guilds, channels, errors

def test_guild_list_paginates_in_id_order_and_hides_other_guilds(emulator):
    names = [f"guild {i}" for i in range(7)]
    made = [emulator.add_guild(n) for n in names]
    emulator.add_guild("not mine", member=False)
    s = session_for(emulator)
    seen, after = [], None
    while True:
        params = {"limit": 3} if after is None else {"limit": 3, "after": after}
        status, page = get_json(s, emulator, "/users/@me/guilds", **params)
        assert status == 200 and len(page) <= 3
        if not page:
            break
        seen += page
        after = page[-1]["id"]
    assert [g["id"] for g in seen] == sorted((g["id"] for g in made), key=int)
    assert "not mine" not in {g["name"] for g in seen}
    assert get_json(s, emulator, "/users/@me/guilds", limit=201)[0] == 400


def test_channel_lookup_errors_carry_discord_codes(emulator):
    guild, channel = world(emulator, 1)
    outsider = emulator.add_guild("elsewhere", member=False)
    hidden = emulator.add_channel(guild["id"], "mods-only", accessible=False)
    foreign = emulator.add_channel(outsider["id"], "x")
    thread = emulator.add_thread(channel["id"], "a thread")
    s = session_for(emulator)
    status, chans = get_json(s, emulator, f"/guilds/{guild['id']}/channels")
    assert status == 200
    assert {c["name"] for c in chans} == {"spx-realtime-aws", "mods-only"}   # threads are not listed
    assert get_json(s, emulator, "/guilds/12345/channels") == (404, {"message": "Unknown Guild", "code": 10004})
    assert get_json(s, emulator, f"/guilds/{outsider['id']}/channels")[1]["code"] == 50001
    for path in ("/channels/999", "/channels/999/messages"):
        assert get_json(s, emulator, path) == (404, {"message": "Unknown Channel", "code": 10003})
    for chan in (hidden, foreign):
        for path in (f"/channels/{chan['id']}", f"/channels/{chan['id']}/messages"):
            assert get_json(s, emulator, path) == (403, {"message": "Missing Access", "code": 50001})
    # the single-message GET is bots-only (user token: 403, code 20002)
    assert get_json(s, emulator, f"/channels/{channel['id']}/messages/1") == \
        (403, {"message": "Only bots can use this endpoint", "code": 20002})
    status, obj = get_json(s, emulator, f"/channels/{thread['id']}")
    assert status == 200 and obj["type"] == 11 and obj["parent_id"] == channel["id"]


# ---------------------------------------------------------------- message pagination

def test_messages_newest_first_with_exclusive_before_boundaries():
    rng = random.Random(5)
    with DiscordEmulator(token=fake_token(), rate_limits=False) as emu:
        _, channel = world(emu)
        start = datetime(2024, 3, 1, 14, 30, tzinfo=UTC)
        times = sorted(start + timedelta(seconds=rng.uniform(0, 86400 * 20)) for _ in range(257))
        times[10] = times[11] = times[12]          # several messages in one millisecond
        posted = [emu.add_message(channel["id"], t) for t in times]
        all_ids = sorted((int(m["id"]) for m in posted), reverse=True)
        s = session_for(emu)
        url = f"/channels/{channel['id']}/messages"
        status, default_page = get_json(s, emu, url)
        assert status == 200 and [int(m["id"]) for m in default_page] == all_ids[:50]
        collected, before = [], None
        while True:
            params = {"limit": 100} if before is None else {"limit": 100, "before": before}
            page = get_json(s, emu, url, **params)[1]
            if not page:
                break
            ids = [int(m["id"]) for m in page]
            assert ids == sorted(ids, reverse=True) and len(ids) <= 100
            if before is not None:
                assert max(ids) < int(before)           # `before` itself is excluded
            collected += ids
            before = page[-1]["id"]
        assert collected == all_ids
        for message in default_page:
            stamp = datetime.fromisoformat(message["timestamp"])
            assert stamp.utcoffset() == timedelta(0) and message["timestamp"].endswith("+00:00")
            assert snowflake_time(message["id"]) == stamp


def test_after_around_and_bad_parameters():
    with DiscordEmulator(token=fake_token(), rate_limits=False) as emu:
        _, channel = world(emu, 30)
        s = session_for(emu)
        url = f"/channels/{channel['id']}/messages"
        everything = [int(m["id"]) for m in get_json(s, emu, url, limit=100)[1]]   # newest first
        oldest_first = everything[::-1]
        pivot = oldest_first[10]
        after = [int(m["id"]) for m in get_json(s, emu, url, after=pivot, limit=5)[1]]
        assert after == oldest_first[11:16][::-1]           # the 5 just after, newest first
        around = [int(m["id"]) for m in get_json(s, emu, url, around=pivot, limit=6)[1]]
        assert pivot in around and len(around) == 6 and around == sorted(around, reverse=True)
        for params in ({"limit": 0}, {"limit": 101}, {"limit": "x"}, {"before": pivot, "after": pivot},
                       {"before": "abc"}):
            status, body = get_json(s, emu, url, **params)
            assert status == 400 and body["code"] == 50035, params


# ---------------------------------------------------------------- threads by token kind

def test_thread_endpoints_follow_token_kind():
    for kind in ("user", "bot"):
        with DiscordEmulator(token=fake_token(), token_kind=kind) as emu:
            guild, channel = world(emu)
            active = emu.add_thread(channel["id"], "live")
            old = [emu.add_thread(channel["id"], f"old {i}", archived=True,
                                  archive_time=datetime(2024, 5, 1 + i, tzinfo=UTC)) for i in range(3)]
            s = session_for(emu, bot=(kind == "bot"))
            status, body = get_json(s, emu, f"/guilds/{guild['id']}/threads/active")
            if kind == "bot":
                assert status == 200 and [t["id"] for t in body["threads"]] == [active["id"]]
            else:
                assert (status, body["code"]) == (403, 20002)
            status, body = get_json(s, emu, f"/channels/{channel['id']}/threads/search", archived="true")
            if kind == "user":
                assert status == 200 and body["total_results"] == 3 and body["has_more"] is False
                assert {t["id"] for t in body["threads"]} == {t["id"] for t in old}
            else:
                assert (status, body["code"]) == (403, 20002)
            path = f"/channels/{channel['id']}/threads/archived/public"
            status, body = get_json(s, emu, path, limit=2)
            assert status == 200 and body["has_more"] is True
            assert [t["id"] for t in body["threads"]] == [old[2]["id"], old[1]["id"]]
            before = body["threads"][-1]["thread_metadata"]["archive_timestamp"]
            rest = get_json(s, emu, path, limit=2, before=before)[1]
            assert [t["id"] for t in rest["threads"]] == [old[0]["id"]] and rest["has_more"] is False


# ---------------------------------------------------------------- rate limits

def test_rate_limit_headers_then_429_per_bucket():
    with DiscordEmulator(token=fake_token(), route_limit=(3, 1.2)) as emu:
        guild, channel = world(emu, 2)
        other = emu.add_channel(guild["id"], "other")
        s = session_for(emu)
        url = emu.api_base + f"/channels/{channel['id']}/messages"
        answers = [s.get(url) for _ in range(3)]
        assert [r.status_code for r in answers] == [200] * 3
        assert [r.headers["X-RateLimit-Remaining"] for r in answers] == ["2", "1", "0"]
        assert {r.headers["X-RateLimit-Limit"] for r in answers} == {"3"}
        assert len({r.headers["X-RateLimit-Bucket"] for r in answers}) == 1
        for r in answers:
            assert 0 <= float(r.headers["X-RateLimit-Reset-After"]) <= 1.2
            assert abs(float(r.headers["X-RateLimit-Reset"]) - time.time()) < 1.5
        limited = s.get(url)
        assert limited.status_code == 429
        body = limited.json()
        assert body["message"] == "You are being rate limited." and body["global"] is False
        assert body["code"] == 0 and 0 < body["retry_after"] <= 1.2
        assert limited.headers["X-RateLimit-Scope"] == "user" and "Retry-After" in limited.headers
        # another channel is another bucket (major parameter); another route too
        assert s.get(emu.api_base + f"/channels/{other['id']}/messages").status_code == 200
        assert s.get(emu.api_base + "/users/@me").status_code == 200
        time.sleep(body["retry_after"] + 0.02)
        assert s.get(url).status_code == 200
        assert emu.count_status(429) == 1


def test_bucket_counts_are_exact_under_concurrency():
    with DiscordEmulator(token=fake_token(), route_limit=(10, 30.0)) as emu:
        local = threading.local()

        def hit(_):
            if not hasattr(local, "s"):
                local.s = session_for(emu)
            return local.s.get(emu.api_base + "/users/@me").status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = Counter(pool.map(hit, range(40)))
        assert statuses == {200: 10, 429: 30}
        assert emu.count_status(429) == 30 and len(emu.requests) == 40


def test_optional_global_limit_spans_routes():
    with DiscordEmulator(token=fake_token(), route_limit=(100, 1.0), global_limit=(4, 30.0)) as emu:
        guild, channel = world(emu)
        s = session_for(emu)
        paths = ["/users/@me", "/users/@me/guilds", f"/channels/{channel['id']}",
                 f"/guilds/{guild['id']}/channels", f"/channels/{channel['id']}/messages"]
        answers = [s.get(emu.api_base + p) for p in paths]
        assert [r.status_code for r in answers] == [200, 200, 200, 200, 429]
        body = answers[-1].json()
        assert body["global"] is True and body["retry_after"] > 25
        assert answers[-1].headers["X-RateLimit-Global"] == "true"
        assert answers[-1].headers["X-RateLimit-Scope"] == "global"


def test_stop_ends_keep_alive_connections():
    emu = DiscordEmulator(token=fake_token()).start()
    s = session_for(emu)
    assert s.get(emu.api_base + "/users/@me").status_code == 200
    emu.stop()
    with pytest.raises(requests.ConnectionError):
        s.get(emu.api_base + "/users/@me", timeout=2)


def test_no_rate_limit_headers_when_disabled():
    with DiscordEmulator(token=fake_token(), rate_limits=False, route_limit=(1, 60)) as emu:
        s = session_for(emu)
        answers = [s.get(emu.api_base + "/users/@me") for _ in range(5)]
        assert {r.status_code for r in answers} == {200}
        assert not any(h.lower().startswith("x-ratelimit") for r in answers for h in r.headers)


# ---------------------------------------------------------------- faults

def test_injected_api_faults_are_consumed_in_order(emulator):
    _, channel = world(emulator, 1)
    s = session_for(emulator)
    url = emulator.api_base + f"/channels/{channel['id']}/messages"
    emulator.inject("status", status=502, path_contains="/messages", times=2)
    assert s.get(emulator.api_base + "/users/@me").status_code == 200        # path does not match
    assert [s.get(url).status_code for _ in range(3)] == [502, 502, 200]
    emulator.inject("rate_limit", retry_after=0.25, is_global=True, path_contains="/messages", times=2)
    storm = [s.get(url) for _ in range(2)]
    for r in storm:
        assert r.status_code == 429 and r.json()["global"] is True and r.json()["retry_after"] == 0.25
        assert r.headers["X-RateLimit-Global"] == "true"
    emulator.inject("rate_limit_absurd", reset_after=3600.0, path_contains="/messages")
    absurd = s.get(url)
    assert absurd.status_code == 429 and absurd.json()["retry_after"] == 3600.0
    assert float(absurd.headers["X-RateLimit-Reset-After"]) == 3600.0
    emulator.inject("rate_limit_absurd", reset_after=7200.0, status=200, path_contains="/messages")
    quiet = s.get(url)
    assert quiet.status_code == 200 and quiet.headers["X-RateLimit-Remaining"] == "0"
    assert float(quiet.headers["X-RateLimit-Reset-After"]) == 7200.0
    assert emulator.count_status(502) == 2 and emulator.count_status(429) == 3
    emulator.inject("truncate", path_contains="/channels/")
    with pytest.raises(requests.RequestException):
        s.get(emulator.api_base + f"/channels/{channel['id']}")
    emulator.inject("html", path_contains="/users/@me")
    html = s.get(emulator.api_base + "/users/@me")
    assert html.status_code == 200 and html.text.startswith("<!DOCTYPE html>")


def test_injected_cdn_faults(emulator):
    _, channel = world(emulator)
    png = image_bytes(3)
    message = emulator.add_message(channel["id"], datetime(2024, 6, 3, 15, tzinfo=UTC),
                                   attachments=[("image.png", png, "image/png")])
    link = message["attachments"][0]["url"]
    emulator.inject("truncate", path_contains="/attachments/")
    with pytest.raises(requests.RequestException):
        requests.get(link)
    emulator.inject("html", path_contains="/attachments/")
    page = requests.get(link)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert page.content != png
    emulator.inject("slow", delay=0.4, path_contains="/attachments/")
    began = time.perf_counter()
    slow = requests.get(link)
    assert time.perf_counter() - began >= 0.4 and slow.content == png
    emulator.inject("status", status=503, path_contains="/attachments/")
    assert requests.get(link).status_code == 503
    assert requests.get(link).content == png


# ---------------------------------------------------------------- CDN links and authorization

def test_signed_links_expire_and_rereading_gives_fresh_ones(emulator):
    _, channel = world(emulator)
    png = image_bytes(4)
    posted = emulator.add_message(channel["id"], datetime(2024, 6, 3, 15, tzinfo=UTC),
                                  attachments=[("chart.png", png, "image/png")])
    link = posted["attachments"][0]["url"]
    assert link.startswith(emulator.cdn_base + "/attachments/")
    query = parse_qs(urlsplit(link).query)
    assert set(query) == {"ex", "is", "hm"}
    assert int(query["ex"][0], 16) - int(query["is"][0], 16) == 86400
    assert requests.get(link).content == png
    assert requests.get(link.replace("hm=", "hm=0")).status_code == 404
    emulator.expire_links()
    gone = requests.get(link)
    assert gone.status_code == 404 and gone.text == "This content is no longer available."
    s = session_for(emulator)
    fresh = s.get(emulator.api_base + f"/channels/{channel['id']}/messages",
                  params={"around": posted["id"], "limit": 1}).json()
    assert [m["id"] for m in fresh] == [posted["id"]]
    new_link = fresh[0]["attachments"][0]["url"]
    assert new_link != link and requests.get(new_link).content == png
    # POST /attachments/refresh-urls re-signs links for a user token too; an unknown link is left out
    other = "https://example.com/attachments/1/2/x.png?ex=1&is=1&hm=1"
    answer = s.post(emulator.api_base + "/attachments/refresh-urls", json={"attachment_urls": [link, other]})
    assert answer.status_code == 200
    [entry] = answer.json()["refreshed_urls"]
    assert entry["original"] == link and requests.get(entry["refreshed"]).content == png
    too_many = s.post(emulator.api_base + "/attachments/refresh-urls", json={"attachment_urls": [link] * 51})
    assert too_many.status_code == 400 and too_many.json()["code"] == 50035
    assert s.get(emulator.api_base + "/attachments/refresh-urls").status_code == 405


def test_short_ttl_links_are_already_expired():
    with DiscordEmulator(token=fake_token(), link_ttl=-5) as emu:
        _, channel = world(emu)
        posted = emu.add_message(channel["id"], datetime(2024, 6, 3, 15, tzinfo=UTC),
                                 attachments=[("a.png", image_bytes(1), "image/png")])
        assert requests.get(posted["attachments"][0]["url"]).status_code == 404


def test_request_log_records_authorization_per_server(emulator):
    _, channel = world(emulator)
    url = emulator.host_image("x.png", image_bytes(2))
    session_for(emulator).get(emulator.api_base + "/users/@me")
    assert requests.get(url + "?width=10").content == image_bytes(2)       # query strings allowed
    assert requests.get(url, headers={"Authorization": "leak"}).status_code == 200
    records = emulator.requests
    assert [(r.server, r.status) for r in records] == [("api", 200), ("cdn", 200), ("cdn", 200)]
    assert records[0].authorization == emulator.token
    assert records[1].authorization is None and records[1].query == {"width": "10"}
    assert records[2].authorization == "leak"
    assert records[0].at <= records[1].at <= records[2].at


# ---------------------------------------------------------------- throughput

def test_keep_alive_and_concurrent_clients():
    with DiscordEmulator(token=fake_token(), latency=0.05) as emu:
        urls = [emu.host_image(f"{i}.png", image_bytes(i, size=(40, 30))) for i in range(8)]
        s = requests.Session()
        for url in urls:
            assert s.get(url).status_code == 200
        assert emu.connections_opened["cdn"] == 1                 # one keep-alive connection
        local = threading.local()

        def fetch(url):
            if not hasattr(local, "s"):
                local.s = requests.Session()
            return local.s.get(url).status_code

        began = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(fetch, urls * 10))
        elapsed = time.perf_counter() - began
        assert statuses == [200] * 80
        # 80 requests x 50 ms, 8 at a time: ~0.5 s; sequential would be 4 s
        assert elapsed < 1.6, elapsed


# ---------------------------------------------------------------- generators

END = datetime(2024, 11, 15, 21, 30, tzinfo=UTC)    # window holds the 2024-11-03 DST change


def test_generator_is_deterministic_and_realistic():
    with DiscordEmulator(token=fake_token()) as one, DiscordEmulator(token=fake_token()) as two:
        a = generate_channel(one, seed=11, days=21, end=END, tz_error_days=(3, 2))
        b = generate_channel(two, seed=11, days=21, end=END, tz_error_days=(3, 2))
        c = generate_channel(two, seed=12, days=21, end=END, channel_name="other")

    def key(gen):
        return [(e.source, e.filename, e.sha256, e.time) for e in gen.expected_images]

    assert key(a) == key(b) and key(a) != key(c)
    assert a.image_count == len(a.expected_images) > 100
    assert Counter(e.source for e in a.expected_images).keys() >= {
        "attachment", "embed", "text", "snapshot_attachment", "snapshot_text", "snapshot_embed"}
    assert a.dst_change_dates == [datetime(2024, 11, 4).date()]
    bad = set(a.tz_error_dates)
    assert len(bad) == 2
    offsets = set()
    for message in a.messages:
        when = datetime.fromisoformat(message["timestamp"])
        local = when.astimezone(NY)
        offsets.add(local.utcoffset())
        assert a.start <= when <= a.end and local.weekday() < 5
        opens = local.replace(hour=9, minute=30, second=0, microsecond=0)
        shift = timedelta(hours=5) if local.date() in bad else timedelta(0)
        assert opens + shift <= local <= opens + shift + timedelta(hours=6, minutes=30), local
    assert offsets == {timedelta(hours=-4), timedelta(hours=-5)}
    by_id = {m["id"]: m for m in a.messages}
    assert len(a.repost_pairs) > 10
    for first, again in a.repost_pairs:
        gap = (datetime.fromisoformat(by_id[again]["timestamp"])
               - datetime.fromisoformat(by_id[first]["timestamp"])).total_seconds()
        assert 45 <= gap <= 80
        assert [e.sha256 for e in a.expected_images if e.message_id == first] == \
               [e.sha256 for e in a.expected_images if e.message_id == again]
    burst = [e for e in a.expected_images if e.message_id in a.same_second_message_ids]
    assert len(burst) >= 4 and {e.filename for e in burst} == {"image.png"}
    assert len({e.sha256 for e in burst}) == len(burst)
    assert len({e.time.replace(microsecond=0) for e in burst}) == 1
    assert {kind for _, kind, _ in a.non_images} == {"attachment", "video"}


def test_generator_spring_forward_and_naive_times():
    with DiscordEmulator(token=fake_token()) as emu:
        gen = generate_channel(emu, seed=2, days=9, per_day=(2, 3), end=datetime(2024, 3, 15, 21, tzinfo=UTC))
        assert gen.dst_change_dates == [datetime(2024, 3, 11).date()]
        offsets = {datetime.fromisoformat(m["timestamp"]).astimezone(NY).utcoffset() for m in gen.messages}
        assert offsets == {timedelta(hours=-5), timedelta(hours=-4)}
        with pytest.raises(ValueError):
            emu.add_message(gen.channel["id"], datetime(2024, 3, 15, 10))


def test_odd_file_names_survive_the_cdn(emulator):
    _, channel = world(emulator)
    png = image_bytes(8)
    names = ["../../evil name.png", "图表 #1?.png", "a%2Fb.png"]
    posted = emulator.add_message(channel["id"], datetime(2024, 6, 3, 15, tzinfo=UTC),
                                  attachments=[(n, png, "image/png") for n in names])
    assert [a["filename"] for a in posted["attachments"]] == names
    for attachment in posted["attachments"]:
        assert requests.get(attachment["url"]).content == png
    for name in names:
        assert requests.get(emulator.host_image(name, png)).content == png


def test_expected_images_are_what_the_channel_serves():
    """Walk the channel like a downloader would and compare with expected_images."""
    with DiscordEmulator(token=fake_token(), rate_limits=False) as emu:
        gen = generate_channel(emu, seed=4, days=8, end=END)
        s = session_for(emu)
        messages, before = [], None
        while True:
            page = s.get(emu.api_base + f"/channels/{gen.channel['id']}/messages",
                         params={"limit": 100, **({"before": before} if before else {})}).json()
            if not page:
                break
            messages += page
            before = page[-1]["id"]
        assert {m["id"] for m in messages} == {m["id"] for m in gen.messages}
        by_id = {m["id"]: m for m in messages}
        cdn = requests.Session()
        for item in gen.expected_images:
            message = by_id[item.message_id]
            inner = message["message_snapshots"][0]["message"] if item.source.startswith("snapshot") else message
            if item.source.endswith("attachment"):
                att = next(a for a in inner["attachments"] if a["id"] == item.ref)
                assert att["filename"] == item.filename
                assert att.get("content_type", "image/").startswith("image/") and att["width"] > 0
                url = att["url"]
            else:
                url = item.ref
                assert url in inner["content"] or url in json.dumps(inner["embeds"])
            body = cdn.get(url).content
            assert hashlib.sha256(body).hexdigest() == item.sha256
            assert datetime.fromisoformat(message["timestamp"]) == item.time


def test_build_demo_channel_is_quick_and_has_a_time_zone_error():
    with DiscordEmulator(token=fake_token()) as emu:
        began = time.perf_counter()
        demo = build_demo_channel(emu)
        elapsed = time.perf_counter() - began
    assert elapsed < 5, elapsed
    assert 200 <= demo.image_count <= 600
    assert demo.tz_error_dates and demo.end - demo.start == timedelta(days=30)
    assert abs((demo.end - datetime.now(UTC)).total_seconds()) < 60


# ---------------------------------------------------------------- OpenAPI validation

@pytest.fixture(scope="module")
def discord_schemas():
    if not SHARED_SPEC.is_file():
        pytest.skip(f"Discord's OpenAPI description is not at {SHARED_SPEC} (only on developer machines/CI)")
    from jsonschema import Draft202012Validator, FormatChecker
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    document = json.loads(SHARED_SPEC.read_text(encoding="utf-8"))

    def make(doc):
        base = "urn:discord-openapi"
        registry = Registry().with_resource(base, Resource(contents=doc, specification=DRAFT202012))

        def validator(name):
            assert name in doc["components"]["schemas"], name
            return Draft202012Validator({"$ref": f"{base}#/components/schemas/{name}"},
                                        registry=registry, format_checker=FormatChecker())
        return validator

    # The published spec lists only DEFAULT (0) for MessageReferenceType, but
    # Discord sends FORWARD (1) on forwarded messages (its docs' "Message
    # Reference Types"). Allow exactly that and nothing else.
    patched = copy.deepcopy(document)
    patched["components"]["schemas"]["MessageReferenceType"]["oneOf"].append(
        {"title": "FORWARD", "const": 1})
    # Nor does it list GUILD_MEDIA (16), a channel type of Discord's docs
    # ("Channel Types"), among the guild channels' types.
    patched["components"]["schemas"]["ChannelTypes"]["oneOf"].append({"title": "GUILD_MEDIA", "const": 16})
    patched["components"]["schemas"]["GuildChannelResponse"]["properties"]["type"]["enum"].append(16)
    return make(patched), make(document)


def assert_valid(validator, instance):
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:10])


def test_emulator_json_matches_discord_openapi(discord_schemas):
    schema, unpatched = discord_schemas
    with DiscordEmulator(token=fake_token(), route_limit=(1, 30)) as emu:
        guild, channel = world(emu)
        thread = emu.add_thread(channel["id"], "archive", archived=True)
        url = emu.host_image("chart.png", image_bytes(1)) + "?width=160&height=100"
        posted = emu.add_message(
            channel["id"], datetime(2024, 11, 4, 14, 31, 5, 123000, tzinfo=UTC), content=f"look {url}",
            attachments=[("image.png", image_bytes(2), "image/png"), ("notes.txt", b"hi", "text/plain")],
            embeds=[{"type": "image", "url": url, "thumbnail": {"url": url, "proxy_url": url,
                                                                 "width": 160, "height": 100}},
                    {"type": "rich", "title": "levels", "image": {"url": url, "proxy_url": url}},
                    {"type": "video", "url": url, "video": {"url": url, "width": 640, "height": 360}}],
            snapshots=[{"content": "fwd", "attachments": [("image.png", image_bytes(3), "image/png")],
                        "embeds": [], "timestamp": datetime(2024, 11, 4, 14, 0, tzinfo=UTC)}])
        s = session_for(emu)
        message = s.get(emu.api_base + f"/channels/{channel['id']}/messages",
                        params={"around": posted["id"], "limit": 1}).json()[0]
        status, guilds = get_json(s, emu, "/users/@me/guilds")
        chan = get_json(s, emu, f"/channels/{channel['id']}")[1]
        me = get_json(s, emu, "/users/@me")[1]
        archived = get_json(s, emu, f"/channels/{channel['id']}/threads/archived/public")[1]
        searched = get_json(s, emu, f"/channels/{channel['id']}/threads/search")[1]
        limited = s.get(emu.api_base + "/users/@me")
        missing = get_json(s, emu, "/channels/1")[1]
        unauthorized = requests.get(emu.api_base + "/users/@me").json()
    assert message["message_snapshots"][0]["message"]["attachments"] and message["message_reference"]["type"] == 1
    assert_valid(schema("MessageResponse"), message)
    for attachment in message["attachments"]:
        assert_valid(schema("MessageAttachmentResponse"), attachment)
    for embed in message["embeds"]:
        assert_valid(schema("MessageEmbedResponse"), embed)
    # the only deviation from the published spec is the FORWARD reference type
    errors = list(unpatched("MessageResponse").iter_errors(message))
    assert errors and all(list(e.absolute_path)[:2] == ["message_reference", "type"] for e in errors)
    assert status == 200 and guilds
    for g in guilds:
        assert_valid(schema("MyGuildResponse"), g)
    assert_valid(schema("GuildChannelResponse"), chan)
    assert_valid(schema("UserResponse"), me)
    assert_valid(schema("ThreadsResponse"), archived)
    assert_valid(schema("ThreadSearchResponse"), searched)
    assert archived["threads"][0]["id"] == thread["id"]
    assert_valid(schema("ThreadResponse"), archived["threads"][0])
    assert limited.status_code == 429
    assert_valid(schema("RatelimitedResponse"), limited.json())
    assert_valid(schema("ErrorResponse"), missing)
    assert_valid(schema("ErrorResponse"), unauthorized)


def test_generated_traffic_matches_discord_openapi(discord_schemas):
    schema, _ = discord_schemas
    validator = schema("MessageResponse")
    with DiscordEmulator(token=fake_token(), rate_limits=False, token_kind="bot") as emu:
        gen = generate_channel(emu, seed=9, days=6, end=END, image_size=(60, 40))
        active = emu.add_thread(gen.channel["id"], "live")
        s = session_for(emu, bot=True)
        page = s.get(emu.api_base + f"/channels/{gen.channel['id']}/messages", params={"limit": 100}).json()
        threads = get_json(s, emu, f"/guilds/{gen.guild['id']}/threads/active")[1]
    kinds = {e.source for e in gen.expected_images if e.message_id in {m["id"] for m in page}}
    assert len(page) > 20 and {"attachment", "embed", "text"} <= kinds
    for message in page:
        assert_valid(validator, message)
    assert [t["id"] for t in threads["threads"]] == [active["id"]]
    assert_valid(schema("ThreadsResponse"), threads)


# ---------------------------------------------------------------- today's Discord (issues 10, 16)

def test_new_shapes_match_discord_openapi(discord_schemas):
    """Components V2 (also in a forward), attachment title and flags, forum
    and media channels, a private thread, the application, and the error
    bodies of the restrictive answers, against Discord's schemas."""
    from discordpicextract.emulator.components import container, file, gallery, section, text

    schema, _ = discord_schemas
    with DiscordEmulator(token=fake_token(), token_kind="bot", rate_limits=False, manage_threads=True) as emu:
        guild, channel = world(emu)
        up = ("a.png", image_bytes(1), "image/png")
        posted = emu.add_message(
            channel["id"], datetime(2026, 11, 20, 15, tzinfo=UTC),
            attachments=[("__.png", image_bytes(2), "image/png", {"title": "图表", "flags": 1 << 3}),
                         ("t.png", image_bytes(3), "image/png", {"flags": 1 << 1})],
            components=[container(text("levels"), gallery(up), section("x", ("s.png", image_bytes(4), "image/png")),
                                  file(("n.txt", b"5800", "text/plain")))],
            snapshots=[{"content": "", "components": [gallery(("f.png", image_bytes(5), "image/png"))]}])
        forum = emu.add_channel(guild["id"], "forum", kind=15)
        media = emu.add_channel(guild["id"], "media", kind=16)
        emu.add_forum_post(media["id"], "post", datetime(2026, 11, 20, 16, tzinfo=UTC),
                           attachments=[("p.png", image_bytes(6), "image/png")])
        private = emu.add_thread(channel["id"], "mods", archived=True, private=True)
        s = session_for(emu, bot=True)
        message = get_json(s, emu, f"/channels/{channel['id']}/messages/{posted['id']}")[1]
        forum_obj, media_obj = (get_json(s, emu, f"/channels/{c['id']}")[1] for c in (forum, media))
        app = get_json(s, emu, "/applications/@me")[1]
        archived = get_json(s, emu, f"/channels/{channel['id']}/threads/archived/private")[1]
        user_only = get_json(s, emu, f"/channels/{channel['id']}/threads/search")[1]
        browser = s.get(emu.api_base + "/users/@me", headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"})
        emu.inject("status", status=403, code=40002, message="You need to verify your account in order to "
                                                            "perform this action.")
        verify = get_json(s, emu, "/users/@me")[1]
        emu.inject("ban")
        ban = s.get(emu.api_base + "/users/@me")
        emu.inject("rate_limit", retry_after=120, scope="shared")
        shared = s.get(emu.api_base + "/users/@me")
    assert message["flags"] & (1 << 15) and [a["filename"] for a in message["attachments"]] == ["__.png", "t.png"]
    assert message["attachments"][0]["title"] == "图表" and message["attachments"][1]["flags"] == 2
    assert_valid(schema("MessageResponse"), message)
    assert_valid(schema("MessageSnapshotResponse"), message["message_snapshots"][0])
    for component in message["components"]:
        assert_valid(schema("ContainerComponentResponse"), component)
    assert forum_obj["type"] == 15 and media_obj["type"] == 16
    for obj in (forum_obj, media_obj):
        assert_valid(schema("GuildChannelResponse"), obj)
    assert_valid(schema("PrivateApplicationResponse"), app)
    assert_valid(schema("ThreadsResponse"), archived)
    assert [t["id"] for t in archived["threads"]] == [private["id"]] and archived["threads"][0]["type"] == 12
    for body, code in ((user_only, 20002), (browser.json(), 40333), (verify, 40002), (ban.json(), 0)):
        assert body["code"] == code
        assert_valid(schema("ErrorResponse"), body)
    assert browser.status_code == 403 and ban.status_code == 429
    assert not [h for h in ban.headers if h.lower().startswith("x-ratelimit") or h.lower() == "retry-after"]
    assert shared.status_code == 429 and shared.headers["X-RateLimit-Scope"] == "shared"
    assert_valid(schema("RatelimitedResponse"), shared.json())


def test_the_restrictive_answers_of_todays_discord():
    """User tokens: the single-message GET refused (20002), no application;
    a bot without the Message Content intent sees empty messages; forum
    /messages answers 200 []; threads/search sorts by last message; the
    media proxy resizes and re-encodes; embeds get a proxy_url on another
    host; Cloudflare's ban pages; too many invalid answers ban the IP."""
    png = image_bytes(7)
    with DiscordEmulator(token=fake_token(), rate_limits=False, invalid_limit=5) as emu:
        guild, channel = world(emu)
        url = emu.host_image("ext.png", png)
        posted = emu.add_message(channel["id"], datetime(2026, 11, 20, 15, tzinfo=UTC),
                                 attachments=[("a.png", png, "image/png")],
                                 embeds=[{"type": "image", "url": url, "thumbnail": {"url": url}}])
        old = emu.add_thread(channel["id"], "old", created=datetime(2026, 1, 1, tzinfo=UTC))
        busy = emu.add_thread(channel["id"], "busy", created=datetime(2025, 1, 1, tzinfo=UTC))
        emu.add_message(busy["id"], datetime(2026, 11, 20, tzinfo=UTC), content="x")
        forum = emu.add_channel(guild["id"], "forum", kind=15)
        emu.add_forum_post(forum["id"], "post", datetime(2026, 11, 20, tzinfo=UTC), content="hi")
        s = session_for(emu)
        assert get_json(s, emu, f"/channels/{channel['id']}/messages/{posted['id']}")[1]["code"] == 20002
        assert get_json(s, emu, "/applications/@me")[0] == 401
        assert get_json(s, emu, f"/channels/{forum['id']}/messages") == (200, [])
        searched = get_json(s, emu, f"/channels/{channel['id']}/threads/search", sort_by="last_message_time")[1]
        assert [t["id"] for t in searched["threads"]] == [busy["id"], old["id"]]
        thumb = posted["embeds"][0]["thumbnail"]
        assert urlsplit(thumb["proxy_url"]).hostname == "localhost" and urlsplit(thumb["url"]).hostname == "127.0.0.1"
        assert requests.get(thumb["proxy_url"]).content == png
        link = posted["attachments"][0]["url"]
        resized = requests.get(link + "format=webp&width=20&height=10")
        assert resized.headers["Content-Type"] == "image/webp" and resized.content != png
        for shape, kind in (("cloudflare", "text/plain"), ("html", "text/html")):
            emu.inject("ban", shape=shape)
            answer = s.get(emu.api_base + "/users/@me")
            assert answer.status_code == 429 and answer.headers["Content-Type"].startswith(kind)
        for _ in range(3):   # 2 ban pages + 1 + 20002 + 401 so far: the fifth invalid answer bans the IP
            s.get(emu.api_base + "/applications/@me")
        assert s.get(emu.api_base + "/users/@me").json()["code"] == 0
    with DiscordEmulator(token=fake_token(), token_kind="bot", rate_limits=False, message_content=False) as emu:
        _, channel = world(emu)
        emu.add_message(channel["id"], datetime(2026, 11, 20, tzinfo=UTC), content="levels",
                        attachments=[("a.png", png, "image/png")])
        s = session_for(emu, bot=True)
        [seen] = get_json(s, emu, f"/channels/{channel['id']}/messages")[1]
        assert (seen["content"], seen["attachments"], seen["embeds"], seen["components"]) == ("", [], [], [])
        assert get_json(s, emu, "/applications/@me")[1]["flags"] & (1 << 18 | 1 << 19) == 0
        assert get_json(s, emu, f"/channels/{channel['id']}/threads/archived/private")[1]["code"] == 50013


def test_replay_of_real_shaped_messages(tmp_path, monkeypatch, capsys, discord_schemas):
    """A page of messages written in the shape of real recordings (a spoiler
    attachment with flags and one without the prefix, a forward, a
    Components V2 gallery also listing an upload in attachments, a rich bot
    embed with image and thumbnail, a YouTube embed), served as it is from a
    loopback server: the right six images are saved, under the right names."""
    import http.server

    import discord_downloader

    schema, _ = discord_schemas
    fixture = json.loads((ROOT / "tests" / "data" / "discord_replay_messages.json").read_text(encoding="utf-8"))
    names = ["SPOILER_pnl.png", "pnl2.png", "forwarded_chart.png", "level_1.png", "level_2.png",
             "spx_full.png", "logo_small.png", "maxresdefault.jpg"]
    files = {name: image_bytes(seed, (40, 30), fmt="JPEG" if name.endswith(".jpg") else "PNG")
             for seed, name in enumerate(names)}
    served = []
    channel_id = fixture["channel"]["id"]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            path, _, query = self.path.partition("?")
            served.append(path)
            body, kind = b"", "application/json"
            if path == "/api/v10/users/@me":
                body = json.dumps({"id": "1", "username": "me", "global_name": None}).encode()
            elif path == f"/api/v10/channels/{channel_id}":
                body = json.dumps(fixture["channel"]).encode()
            elif path == f"/api/v10/channels/{channel_id}/messages":
                body = page.encode() if "before=" not in query else b"[]"
            elif path.rsplit("/", 1)[-1] in files:
                body, kind = files[path.rsplit("/", 1)[-1]], "image/png"
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            if path.startswith("/api/"):   # as Discord sends them (else the client spaces its calls)
                for name, value in (("Limit", "5"), ("Remaining", "4"), ("Reset-After", "1.000"),
                                    ("Bucket", hashlib.sha256(path.encode()).hexdigest()[:16])):
                    self.send_header(f"X-RateLimit-{name}", value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    base = f"http://127.0.0.1:{server.server_port}"
    page = json.dumps(fixture["messages"])
    for mark in ("{CDN}", "{MEDIA}", "{EXT}", "{ORIGIN}"):
        page = page.replace(mark, base + "/" + mark.strip("{}").lower())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("DISCORD_API_BASE", base + "/api/v10")
    monkeypatch.setenv("DISCORD_USER_TOKEN", fake_token())
    try:
        code = discord_downloader.main(["--channel", channel_id, "--after", "2026-11-01", "--output", "out",
                                        "--no-progress", "--timezone", "UTC"])
    finally:
        server.shutdown()
        server.server_close()
    out = capsys.readouterr()
    assert code == 0, out.err
    saved = sorted((tmp_path / "out").glob("*.png"))
    assert sorted(p.name for p in saved) == [
        "2026-11-20_14-31-05_SPOILER_pnl.png", "2026-11-20_14-31-05_pnl2.png",
        "2026-11-20_15-02-44_forwarded_chart.png",        # named by the forward's time
        "2026-11-20_15-40-00_level_1.png", "2026-11-20_15-40-00_level_2.png",
        "2026-11-20_16-05-09_spx_full.png"]
    assert not any(p.endswith(("logo_small.png", "maxresdefault.jpg")) for p in served)
    assert sum(p.endswith("level_2.png") for p in served) == 1      # in attachments and the gallery: once
    assert any(p.startswith("/ext/external/") for p in served)      # the embed's proxy copy first
    for message in fixture["messages"]:
        assert_valid(schema("MessageResponse"), message)
