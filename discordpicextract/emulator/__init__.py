"""A loopback Discord emulator: the subset of API v10 the downloader uses, plus a CDN.

`DiscordEmulator` runs two real HTTP servers on 127.0.0.1 (free ports): an API
server speaking Discord's JSON shapes, snowflake IDs, pagination, token check,
per-route rate-limit buckets and 429 bodies, and a separate CDN server serving
image bytes behind signed, expiring links (`ex`/`is`/`hm`). Faults (5xx, 429
storms, truncated bodies, HTML error pages, slow answers, expired links) can be
injected, and every request is logged with whether it carried Authorization.
It ships with the product: `main.py --demo` runs the real download against it.
Stdlib only, plus Pillow for the chart generator.

Modules: server (HTTP servers, request log, `DiscordEmulator`), routes (API and
CDN handlers), faults (rate limits, injected faults), store (the world's state),
render (message JSON, signed links), generator and charts (seeded traffic),
snowflakes (IDs and times), responses (answers and Discord's error bodies).

Use from a test::

    from discordpicextract.emulator import DiscordEmulator, generate_channel

    with DiscordEmulator(token="tok-" + secrets.token_hex(8)) as emu:
        gen = generate_channel(emu, seed=3, days=10)
        monkeypatch.setenv("DISCORD_API_BASE", emu.api_base)
        ... run the downloader on gen.channel["id"] ...
        assert emu.count_status(429) == 0
        # gen.expected_images lists every image a correct download must save

Or build the world by hand::

    g = emu.add_guild("数学家炒美股")                  # member=False: a guild you are not in
    c = emu.add_channel(g["id"], "spx-realtime-aws")  # accessible=False: 403 Missing Access
    t = emu.add_thread(c["id"], "old", archived=True)
    url = emu.host_image("chart.png", png)            # unsigned URL for text or embeds
    emu.add_message(c["id"], when, content=f"see {url}?w=1",
                    attachments=[("image.png", png, "image/png")],
                    embeds=[{"type": "image", "url": url, "thumbnail": {"url": url}}],
                    snapshots=[{"content": "", "attachments": [...], "embeds": []}])

Faults: `emu.inject(kind, path_contains=..., times=n, **params)` with kind
"status", "rate_limit", "rate_limit_absurd", "truncate", "html" or "slow";
`emu.expire_links()` invalidates every CDN link issued so far.
Inspection: `emu.requests` (RequestRecord: server, method, path, query,
authorization, status, at), `emu.count_status(429)`, `emu.connections_opened`,
`emu.clear_log()`, `emu.clear_faults()`, `emu.reset_rate_limits()`.
Helpers: `snowflake_for(when, increment)`, `snowflake_time(id)`,
`chart_image_bytes(key, w, h)` (cached chart PNG), `GeneratedChannel.expected_images`
(ExpectedImage: message_id, source, ref, filename, sha256, time).
"""
from __future__ import annotations

from .charts import chart_image_bytes
from .generator import ExpectedImage, GeneratedChannel, build_demo_channel, generate_channel
from .render import image_dimensions
from .routes import API_PREFIX, GONE_TEXT
from .server import DiscordEmulator, RequestRecord
from .snowflakes import DISCORD_EPOCH_MS, iso, snowflake_for, snowflake_time

__all__ = [
    "API_PREFIX",
    "DISCORD_EPOCH_MS",
    "GONE_TEXT",
    "DiscordEmulator",
    "ExpectedImage",
    "GeneratedChannel",
    "RequestRecord",
    "build_demo_channel",
    "chart_image_bytes",
    "generate_channel",
    "image_dimensions",
    "iso",
    "snowflake_for",
    "snowflake_time",
]
