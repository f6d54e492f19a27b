"""The review page as one self-contained HTML file.

Offline and alone: no script, no font, no request to any host; every
`src`/`href` is relative (a thumbnail, an image in a pipeline folder, a
`#day` on the page). A Content-Security-Policy says so to the browser too,
so even a page edited by hand cannot fetch from the network. Every name is
data: it goes through `html.escape` (text and attributes) and, in links,
through URL quoting.
"""
import functools
import hashlib
import html
import logging
import os
import pickle
import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import NamedTuple, Optional, Protocol
from urllib.parse import quote

import config
from discordpicextract import __version__, market
from discordpicextract.review.model import ROLE_LABELS, ROLES, Day, Entry, Pair, ReviewModel
from discordpicextract.review.sheets import Place
from discordpicextract.review.thumbs import Thumb

log = logging.getLogger(__name__)  # -v: each day section rebuilt or reused

CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"

STYLE = """
:root{--ink:#1d2330;--mute:#667085;--line:#d9dee7;--band:#e3f1e6;--out:#d92d20;--off:#f79009;--pick:#1570ef}
*{box-sizing:border-box}
body{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:#f6f7f9}
header,section,nav{padding:12px 20px}
h1{margin:0 0 4px;font-size:22px}h2{font-size:17px;margin:0 0 8px}
.mute,small{color:var(--mute)}
table{border-collapse:collapse;background:#fff}
th,td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.facts{margin:8px 0 0;padding-left:20px}
.warn{color:var(--out);font-weight:600}
#days a,#check-first a{display:inline-block;margin:2px;padding:2px 6px;border:1px solid var(--line);
 border-radius:4px;background:#fff;color:var(--ink);text-decoration:none;font-variant-numeric:tabular-nums}
#days a.has-out{border-color:var(--out);color:var(--out)}
#check-first a{border-color:var(--off);font-weight:600}
.scroll{overflow-x:auto;background:#fff;border:1px solid var(--line)}
svg text{font-size:10px;fill:var(--mute)}
svg .band{fill:var(--band)}svg .grid{stroke:var(--line);stroke-width:1}
svg .dot{fill:#475467}svg .dot.out{fill:var(--out)}svg .dot.rm{fill:none;stroke:#475467}
svg .dot.off{stroke:var(--off);stroke-width:2}svg .gap{fill:var(--mute)}
.legend span{margin-right:14px}
.day{content-visibility:auto;contain-intrinsic-size:auto 420px;border-top:1px solid var(--line)}
.day.remind h2::after{content:"quality check: verify this day";margin-left:8px;font-size:12px;
 color:#fff;background:var(--off);padding:1px 6px;border-radius:3px}
.day h2 a.top{font-size:12px;font-weight:400;margin-left:8px}
.sheet{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start}
.group{display:flex;gap:6px;padding:6px;border:2px dashed var(--mute);border-radius:6px;background:#eef0f3}
figure.tile{margin:0;width:248px;padding:3px;background:#fff;border:1px solid var(--line);border-radius:4px}
figure.tile img{display:block;object-fit:none;background:#eef0f3}
figure.tile .broken{width:240px;height:60px;display:flex;align-items:center;justify-content:center;
 background:#fee4e2;color:var(--out);font-size:12px;text-align:center}
figure.tile.outside{border:2px solid var(--out)}
figure.tile.pick{box-shadow:0 0 0 3px var(--pick)}
figure.tile.removed{opacity:.85;background:#f2f4f7}
figure.tile.wrong-time{outline:3px dotted var(--off)}
figcaption{font-size:12px;word-break:break-all}
figcaption time{font-weight:700;font-size:13px;font-variant-numeric:tabular-nums}
.flag{display:inline-block;margin:1px 2px;padding:0 4px;border-radius:3px;color:#fff;font-size:11px}
.flag.out{background:var(--out)}.flag.pick{background:var(--pick)}.flag.rm{background:#475467}
.flag.off{background:var(--off)}.flag.bad{background:#7a271a}
.name{display:block;color:var(--mute)}
"""


def count(number: int, word: str) -> str:
    """`1 image`, `2 images`."""
    return f"{number} {word}" if number == 1 else f"{number} {word}s"


def esc(text) -> str:
    return html.escape(shown(str(text)), quote=True)


def shown(text: str) -> str:
    """A name as text: bytes that are not UTF-8 (kept by Python as
    surrogate escapes, which no page can encode) become U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a lone surrogate (a Windows name): no bytes to recover
        return text.encode("utf-8", "replace").decode("utf-8")


def href_to(path: "os.PathLike[str] | str", review_dir: Path) -> Optional[str]:
    """A relative, URL-quoted link from the page to `path`; None when there
    is no relative way (another drive on Windows)."""
    try:
        relative = os.path.relpath(os.path.abspath(path), os.path.abspath(review_dir))
        # surrogateescape: a name that is not UTF-8 links to its very bytes
        return quote(relative.replace(os.sep, "/"), safe="/", errors="surrogateescape")
    except (ValueError, UnicodeEncodeError):
        return None


# The characters urllib.parse.quote never quotes.
_UNQUOTED = re.compile(r"[A-Za-z0-9_.~-]*")


class Links:
    """href_to for the many files of a few folders: each folder's relative
    link is worked out once (abspath and relpath per file cost more than
    the rest of a tile), then a file's name is appended, quoted."""

    def __init__(self, review_dir: Path):
        self.review_dir = review_dir
        self._folders: dict[str, Optional[str]] = {}

    def __call__(self, path) -> Optional[str]:
        folder, name = os.path.split(os.fspath(path))
        if folder not in self._folders:
            self._folders[folder] = href_to(folder or os.curdir, self.review_dir)
        link = self._folders[folder]
        if link is None:
            return None
        if _UNQUOTED.fullmatch(name):
            quoted = name  # what quote() gives back for these characters, without its work
        else:
            try:
                quoted = quote(name, errors="surrogateescape")
            except UnicodeEncodeError:  # a lone surrogate (a Windows name), as href_to
                return None
        return quoted if link == "." else f"{link}/{quoted}"


def day_id(day: date) -> str:
    return f"d-{day.isoformat()}"


def render_page(model: ReviewModel, thumbs: dict[str, Thumb], errors: dict[str, str], review_dir: Path,
                generated: datetime, places: Optional[dict[date, dict[str, Place]]] = None,
                day_parts: Optional["DayParts"] = None) -> str:
    """`thumbs`: name -> Thumb; `places`: per day, thumb file -> where it
    sits on that day's contact sheet (None: each thumbnail its own file);
    `day_parts`: day sections of earlier runs, reused where a day's facts are
    the same (None: every day rendered)."""
    places = places or {}
    links = Links(review_dir)
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{esc(CSP)}\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<title>Archive review</title>",
        f"<style>{STYLE}</style></head><body id=\"top\">",
        _header(model, generated),
        _summary(model, review_dir),
        _check_first(model),
        _day_index(model),
        _timeline(model),
        "<main>",
        *(_day(day, _Pictures(thumbs, places.get(day.date, {}), errors), links, day_parts) for day in model.days),
        "</main></body></html>\n",
    ]
    return "\n".join(parts)


def _header(model, generated) -> str:
    start, end = market.trading_hours()
    return (f"<header><h1>Archive review</h1><p class=\"mute\">Written {generated:%Y-%m-%d %H:%M} by "
            f"discordpicextract {esc(__version__)}. Names in {esc(_zones(model))}; trading hours "
            f"{start:%H:%M}–{end:%H:%M} {esc(config.MARKET_TIMEZONE)}. {len(model.entries)} images, "
            f"{len(model.days)} days.</p></header>")


def _zones(model: ReviewModel) -> str:
    zones = {f.zone or config.TIMEZONE for f in model.folders} or {config.TIMEZONE}
    if len(zones) == 1:
        return zones.pop()
    return ", ".join(f"{f.zone or config.TIMEZONE} ({ROLE_LABELS[f.role]})" for f in model.folders)


def _summary(model: ReviewModel, review_dir) -> str:
    rows = []
    for folder in model.folders:
        dates = folder.dates
        span = f"{dates[0]} – {dates[-1]}" if dates else "–"
        link = href_to(folder.path, review_dir)
        shown = f"<a href=\"{esc(link)}/\">{esc(folder.path)}</a>" if link else esc(folder.path)
        skipped = (f"<span class=\"warn\" title=\"{esc(', '.join(folder.skipped))}\">{len(folder.skipped)}</span>"
                   if folder.skipped else "0")
        rows.append(f"<tr data-role=\"{esc(folder.role)}\"><td>{esc(ROLE_LABELS[folder.role])}</td><td>{shown}</td>"
                    f"<td class=\"n images\">{folder.images}</td><td class=\"n\">{len(dates)}</td><td>{span}</td>"
                    f"<td class=\"n outside\">{folder.outside}</td>"
                    f"<td class=\"n missing\">{len(folder.missing_sessions)}</td><td class=\"n\">{skipped}</td></tr>")
    table = ("<table class=\"folders\"><tr><th>Folder</th><th>Path</th><th>Images</th><th>Dates</th>"
             "<th>First – last</th><th>Outside hours</th><th>Sessions without an image</th>"
             "<th>Skipped names</th></tr>" + "".join(rows) + "</table>")
    return f"<section id=\"summary\"><h2>Summary</h2>{table}<ul class=\"facts\">{''.join(_facts(model))}</ul></section>"


def _facts(model: ReviewModel) -> list[str]:
    removed, unmatched, outside = model.removed, model.unmatched, model.outside
    lost = f"; <span class=\"warn\">{len(unmatched)} match no kept image: look at them</span>" if unmatched else ""
    facts = [f"<li>Duplicates left out by dedupe: <b id=\"n-removed\">{len(removed)}</b>"
             f", each shown beside the image it duplicates{lost}</li>",
             f"<li>Outside trading hours: <b id=\"n-outside\">{len(outside)}</b> images on "
             f"{count(len({e.market_time.date() for e in outside}), 'date')} (red)</li>"]
    if model.missing_sessions:
        days = ", ".join(str(d) for d in model.missing_sessions[:30])
        more = f" and {len(model.missing_sessions) - 30} more" if len(model.missing_sessions) > 30 else ""
        facts.append(f"<li>NYSE sessions without an image in any folder: <b>{len(model.missing_sessions)}</b>"
                     f" ({days}{more})</li>")
    else:
        facts.append("<li>Every NYSE session of the span has an image.</li>")
    if model.verified:
        facts.append(f"<li>Post times known for {len(model.known_time)} images; "
                     f"<b id=\"n-wrong\">{len(model.wrong_time)}</b> named at another time (orange)</li>")
    else:
        facts.append("<li class=\"mute\">Names not checked against Discord's post times.</li>")
    return facts


def _check_first(model: ReviewModel) -> str:
    if not model.reminders:
        return ("<section id=\"check-first\"><h2>Check these days first</h2>"
                "<p class=\"mute\">No image is outside trading hours and no period looks shifted.</p></section>")
    reasons = "".join(f"<li>{r.first} to {r.last}: {esc(r.why)}</li>" for r in model.reminders)
    links = " ".join(f"<a href=\"#{day_id(day.date)}\">{day.date}</a>" for day in model.days if day.reminder)
    return (f"<section id=\"check-first\"><h2>Check these days first</h2><p>The quality check's reminder asks "
            f"for a look at the days around:</p><ul>{reasons}</ul><p>They are listed first below: "
            f"{links or 'no images on those dates.'}</p></section>")


def _day_index(model: ReviewModel) -> str:
    links = []
    for day in sorted(model.days, key=lambda d: d.date):
        entries = day.entries
        marked = " class=\"has-out\"" if any(e.outside for e in entries) else ""
        links.append(f"<a href=\"#{day_id(day.date)}\"{marked}>"
                     f"{day.date} <small>{len(entries)}</small></a>")
    return f"<nav id=\"days\"><h2>Days</h2>{''.join(links)}</nav>"


# --- the timeline ----------------------------------------------------------------

TOP, LEFT, HOUR_PX, BOTTOM = 10, 40, 12, 34


def _timeline(model: ReviewModel) -> str:
    if not model.days:
        return ""
    days = sorted(day.date for day in model.days)
    first, last = days[0], days[-1]
    span = (last - first).days + 1
    column = max(4.0, min(24.0, 1100 / span))
    width, height = LEFT + span * column + 10, TOP + 24 * HOUR_PX + BOTTOM
    start, end = market.trading_hours()
    top, bottom = _y(start.hour + start.minute / 60), _y(end.hour + end.minute / 60)
    body = [f"<rect class=\"band\" x=\"{LEFT}\" y=\"{top:.1f}\" width=\"{span * column:.1f}\" "
            f"height=\"{bottom - top:.1f}\"/>"]
    for hour in range(0, 25, 3):
        body.append(f"<line class=\"grid\" x1=\"{LEFT}\" x2=\"{width - 10:.1f}\" y1=\"{_y(hour)}\" y2=\"{_y(hour)}\"/>"
                    f"<text x=\"{LEFT - 4}\" y=\"{_y(hour) + 3}\" text-anchor=\"end\">{hour:02d}:00</text>")
    body.extend(_date_labels(first, span, column))
    for missing in model.missing_sessions:
        x = LEFT + ((missing - first).days + 0.5) * column
        body.append(f"<rect class=\"gap\" x=\"{x - 1.5:.1f}\" y=\"{_y(24) + 2}\" width=\"3\" height=\"5\">"
                    f"<title>{missing}: NYSE session without an image</title></rect>")
    for day in sorted(model.days, key=lambda d: d.date):
        x = LEFT + ((day.date - first).days + 0.5) * column
        dots = "".join(_dot(entry, x) for entry in day.entries)
        label = f"{day.date}: {count(len(day.entries), 'image')}"
        body.append(f"<a href=\"#{day_id(day.date)}\"><title>{label}</title>{dots}</a>")
    svg = (f"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0f}\" height=\"{height}\" "
           f"role=\"img\" aria-label=\"Every image by date and time of day\">{''.join(body)}</svg>")
    legend = ("<p class=\"legend mute\"><span>green band: trading hours</span><span style=\"color:var(--out)\">"
              "● outside hours</span><span>○ left out by dedupe</span><span style=\"color:var(--off)\">◎ named at "
              "another time than posted</span><span>▮ session without an image</span></p>")
    return (f"<section id=\"timeline\"><h2>Timeline <small>(market time, {esc(config.MARKET_TIMEZONE)})</small></h2>"
            f"<div class=\"scroll\">{svg}</div>{legend}</section>")


def _y(hours: float) -> float:
    return TOP + hours * HOUR_PX


def _dot(entry: Entry, x: float) -> str:
    moment = entry.market_time
    y = _y(moment.hour + moment.minute / 60 + moment.second / 3600)
    classes = "dot" + (" out" if entry.outside else "") + (" rm" if entry.removed else "") + \
              (" off" if entry.time_off is not None else "")
    return f"<circle class=\"{classes}\" cx=\"{x:.1f}\" cy=\"{y:.1f}\" r=\"2.5\"/>"


def _date_labels(first: date, span: int, column: float) -> list[str]:
    every = max(1, round(60 / column))  # a label about every 60 px
    labels = []
    for offset in range(0, span, every):
        day = date.fromordinal(first.toordinal() + offset)
        x = LEFT + (offset + 0.5) * column
        labels.append(f"<text x=\"{x:.1f}\" y=\"{_y(24) + 20}\" text-anchor=\"middle\">{day:%m-%d}</text>")
    return labels


# --- the days ----------------------------------------------------------------------

class _Pictures:
    """A day's pictures: a crop of its contact sheet, a thumbnail file, or
    why there is none."""

    def __init__(self, thumbs, places, errors):
        self.thumbs, self.places, self.errors = thumbs, places, errors

    def of(self, entry: Entry) -> tuple:
        """(sheet or thumbnail file, width, height, x, y), or (why there is none,)."""
        thumb = self.thumbs.get(entry.name)
        if thumb is None:
            return (self.errors.get(entry.name, "no thumbnail"),)
        place = self.places.get(thumb.file) or Place(thumb.file, 0, 0, thumb.width, thumb.height)
        return (place.file, place.width, place.height, place.x, place.y)


class _Figure(NamedTuple):
    """Everything a tile shows of one image: a day's section is rendered
    from these alone, so that a day whose facts are the same as on the
    last run is the same HTML, and is reused (see DayParts)."""

    name: str
    timestamp: datetime
    market_time: datetime
    outside: bool
    pick: bool
    removed: bool
    pair: Optional[Pair]
    post_time: Optional[datetime]
    time_off: Optional[timedelta]
    picture: tuple                  # _Pictures.of
    link: Optional[str]
    roles: str


class _DayFacts(NamedTuple):
    date: date
    reminder: bool
    tiles: tuple                    # ((kept _Figure, (duplicate _Figure, ...)), ...)


def _figure_facts(entry: Entry, pictures: _Pictures, links: Links) -> _Figure:
    return _Figure(entry.name, entry.timestamp, entry.market_time, entry.outside, entry.pick, entry.removed,
                   entry.pair, entry.post_time, entry.time_off, pictures.of(entry), links(entry.path),
                   " ".join(r for r in ROLES if r in entry.roles))


def _day_facts(day: Day, pictures: _Pictures, links: Links) -> _DayFacts:
    return _DayFacts(day.date, day.reminder, tuple(
        (_figure_facts(tile.entry, pictures, links),
         tuple(_figure_facts(entry, pictures, links) for entry in tile.duplicates)) for tile in day.tiles))


class DayParts(Protocol):
    """Day sections kept from an earlier run, by the digest of their facts."""

    def get(self, key: str) -> Optional[str]: ...

    def put(self, key: str, html: str) -> None: ...


@functools.lru_cache(maxsize=1)
def _render_version() -> bytes:
    """What else a day's HTML depends on: this module's code (a changed
    template makes every day again) and the package version."""
    try:
        code = Path(__file__).read_bytes()
    except OSError:  # no source beside the module (a frozen build): the version alone
        code = b""
    return hashlib.blake2b(code + __version__.encode("utf-8"), digest_size=16).digest()


def day_key(facts: _DayFacts) -> str:
    data = pickle.dumps((_render_version(), facts), protocol=4)
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _day(day: Day, pictures: _Pictures, links: Links, parts: Optional[DayParts]) -> str:
    facts = _day_facts(day, pictures, links)
    if parts is None:
        return _day_html(facts)
    key = day_key(facts)
    html = parts.get(key)
    if html is None:
        html = _day_html(facts)
        parts.put(key, html)
        log.debug("day %s: rebuilt (%d image(s))", day.date, len(day.tiles))
    else:
        log.debug("day %s: reused from the last run", day.date)
    return html


def _day_html(day: _DayFacts) -> str:
    entries = [f for main, dups in day.tiles for f in (main, *dups)]
    outside = sum(f.outside for f in entries)
    removed = sum(f.removed for f in entries)
    note = f"{day.date:%A} · {count(len(entries), 'image')}" + (f" · {outside} outside hours" if outside else "") + \
        (f" · {count(removed, 'duplicate')} left out" if removed else "")
    tiles = "".join(_tile_group(main, dups) for main, dups in day.tiles)
    return (f"<section class=\"day{' remind' if day.reminder else ''}\" id=\"{day_id(day.date)}\">"
            f"<h2>{day.date} <small>{note}</small><a class=\"top\" href=\"#top\">top</a></h2>"
            f"<div class=\"sheet\">{tiles}</div></section>")


def _tile_group(main: _Figure, duplicates: tuple) -> str:
    kept = _figure(main)
    if not duplicates:
        return kept
    dups = "".join(_figure(figure) for figure in duplicates)
    return f"<div class=\"group\" title=\"kept image and the duplicates dedupe left out\">{kept}{dups}</div>"


def _picture_html(figure: _Figure) -> str:
    if len(figure.picture) == 1:
        return f"<div class=\"broken\">{esc(figure.picture[0])}</div>"
    file, width, height, x, y = figure.picture
    return (f"<img src=\"{esc(quote(file))}\" width=\"{width}\" height=\"{height}\" "
            f"style=\"object-position:{-x}px {-y}px\" loading=\"lazy\" decoding=\"async\" "
            f"alt=\"{esc(figure.name)}\">")


def _figure(figure: _Figure) -> str:
    classes = ["tile"] + [c for c, on in (("outside", figure.outside), ("pick", figure.pick),
                                          ("removed", figure.removed),
                                          ("wrong-time", figure.time_off is not None)) if on]
    picture = _picture_html(figure)
    if figure.link:
        picture = f"<a href=\"{esc(figure.link)}\">{picture}</a>"
    return (f"<figure class=\"{' '.join(classes)}\" data-name=\"{esc(figure.name)}\" data-in=\"{figure.roles}\">"
            f"{picture}<figcaption><time>{figure.timestamp:%H:%M:%S}</time>{_market_note(figure)}"
            f"{''.join(_flags(figure))}<span class=\"name\">{esc(figure.name)}</span></figcaption></figure>")


def _market_note(entry: _Figure) -> str:
    if entry.market_time == entry.timestamp:
        return ""
    return f" <small>(market {entry.market_time:%H:%M:%S})</small>"


def _flags(entry: _Figure):
    if entry.outside:
        yield " <span class=\"flag out\">outside hours</span>"
    if entry.pick:
        yield " <span class=\"flag pick\">day's pick</span>"
    if entry.removed and entry.pair is not None:
        distance = "pHash ?" if entry.pair.distance is None else f"pHash {entry.pair.distance}"
        yield (f" <span class=\"flag rm\" title=\"{esc('duplicates ' + entry.pair.kept)}\">duplicate "
               f"{_signed(entry.pair.seconds)} · {distance}</span>")
    elif entry.removed:
        yield " <span class=\"flag bad\">left out; matches no kept image</span>"
    if entry.time_off is not None:
        yield (f" <span class=\"flag off\">posted {entry.post_time:%H:%M:%S}"
               f" ({_signed(entry.time_off.total_seconds())})</span>")


def _signed(seconds: float) -> str:
    sign = "+" if seconds >= 0 else "−"
    value = abs(seconds)
    if value >= 3600:
        return f"{sign}{int(value // 3600)}h{int(value % 3600 // 60):02d}m"
    if value >= 60:
        return f"{sign}{int(value // 60)}m{int(value % 60):02d}s"
    return f"{sign}{value:.0f}s"
