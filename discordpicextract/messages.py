"""`messages.csv`: each saved image's message, beside the images.

One row per image file: the file name, the message ID, when it was posted
(UTC, ISO 8601), the author's name and ID, the message text, the jump link
and where in the message the image was (attachment, embed, text link,
forward, component); for a forward also when the original was posted
(`original_posted_at`: `posted_at` is the forward's own time, which names
the file). The downloader adds the rows of what it saves; the
copy steps write the rows of the files they copy into their own folders;
the timestamp tools rename rows with their files. The file is always
rewritten whole through a temp file, so a reader never sees half of it.
"""
import contextlib
import csv
import filecmp
import io
import os
from collections import OrderedDict
from datetime import timezone
from pathlib import Path

from discordpicextract import fileops

MESSAGES_FILE = "messages.csv"
FIELDS = ("file", "message_id", "posted_at", "author", "author_id", "text", "link", "source",
          "original_posted_at")
JUMP_LINK = "https://discord.com/channels/{guild}/{channel}/{message}"


def messages_path(folder) -> Path:
    return Path(folder) / MESSAGES_FILE


def source_label(source: str) -> str:
    """The downloader's item source ("attachment", "text (forwarded)", ...)
    as the column says it."""
    if "forward" in source:
        return "forward"
    if source.startswith("component"):
        return "component"
    if source.startswith("text"):
        return "text link"
    return source.split(" ", 1)[0]


def jump_link(guild_id, channel_id, message_id) -> str:
    """Discord's link to a message (`@me` for a DM, which has no guild)."""
    return JUMP_LINK.format(guild=guild_id or "@me", channel=channel_id, message=message_id)


def posted_at(moment) -> str:
    """An aware datetime as UTC ISO 8601 with milliseconds (a snowflake's precision)."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def row(filename, *, message_id, posted, author, author_id, text, guild_id, channel_id, source,
        original_posted=None) -> dict:
    return {"file": filename, "message_id": str(message_id), "posted_at": posted_at(posted),
            "author": author or "", "author_id": str(author_id or ""), "text": text or "",
            "link": jump_link(guild_id, channel_id, message_id), "source": source_label(source),
            "original_posted_at": posted_at(original_posted) if original_posted else ""}


def read_rows(folder) -> list:
    """The rows of `folder`'s messages.csv, in file order ([] when there is none).
    Every read takes UTF-8 with or without a BOM (a spreadsheet saving the
    file adds one, which would otherwise hide the `file` column)."""
    try:
        data = messages_path(folder).read_bytes()
    except FileNotFoundError:
        return []
    return [dict(zip(FIELDS, values)) for values in _parsed(messages_path(folder), data)]


# The rows of the last file read or written, by path, with its bytes:
# main.py --pipeline reads the download's messages.csv in five steps
# (download, dedupe, the market check's --verify, the review page), and
# parsing is what costs; reading the bytes again and comparing them is
# cheap and exact, whoever wrote the file meanwhile. One file only (about
# 0.9 KiB a row): the copy steps' outputs are read once, and not kept.
_PARSED: "OrderedDict[str, tuple[bytes, tuple]]" = OrderedDict()
_PARSED_FILES = 1
_KEEPING = False


@contextlib.contextmanager
def kept_rows():
    """Within the block (a pipeline run, listings.shared), the rows of the
    last messages.csv read or written are kept for the next reader."""
    global _KEEPING
    outer, _KEEPING = _KEEPING, True
    try:
        yield
    finally:
        _KEEPING = outer
        if not outer:
            _PARSED.clear()


def _parsed(path: Path, data: bytes) -> tuple:
    """The rows of `data` (the bytes of `path`) as tuples in FIELDS order."""
    key = os.path.abspath(path)
    known = _PARSED.get(key)
    if known is not None and known[0] == data:
        _PARSED.move_to_end(key)
        return known[1]
    rows = tuple(_tuples(csv.reader(io.StringIO(data.decode("utf-8-sig", "surrogateescape"), newline=""))))
    _remember(key, data, rows)
    return rows


def _tuples(reader):
    """The rows of a csv.reader over a messages.csv as FIELDS tuples."""
    header: list = next(reader, [])
    # by the header's names, so that a column added later (or moved) reads right
    columns = [header.index(name) if name in header else None for name in FIELDS]
    for row in reader:
        if row:
            yield tuple("" if i is None or i >= len(row) else row[i] for i in columns)


def _remember(key: str, data: bytes, rows: tuple) -> None:
    if not _KEEPING:
        return  # a step run on its own reads the file once: holding 100,000 rows would only cost memory
    _PARSED[key] = (data, rows)
    _PARSED.move_to_end(key)
    while len(_PARSED) > _PARSED_FILES:
        _PARSED.popitem(last=False)


def render(rows) -> bytes:
    rows = list(rows)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(FIELDS)
    # the columns by name, "" for a missing one (csv.DictWriter's rule, in C)
    writer.writerows([entry.get(name, "") for name in FIELDS] for entry in rows)
    data = text.getvalue()
    if "\r" in data:
        data = _render_quoting_cr(rows)
    return data.encode("utf-8", errors="surrogateescape")


def _render_quoting_cr(rows) -> str:
    text = io.StringIO()
    _write_cells(text, ([entry.get(name, "") for name in FIELDS] for entry in rows))
    return text.getvalue()


def _write_cells(out, rows) -> None:
    """The header, then FIELDS-ordered `rows`. csv quotes a field holding a
    line feed, not one holding a lone carriage return (not in the line
    terminator), which a reader takes for a line break: such a row is
    written with every field quoted."""
    writer = csv.writer(out, lineterminator="\n")
    quoted = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(FIELDS)
    for cells in rows:
        (quoted if any(isinstance(cell, str) and "\r" in cell for cell in cells) else writer).writerow(cells)


def write_rows(folder, rows, remember=True) -> bool:
    """Write `rows` as `folder`'s messages.csv, atomically; False (nothing
    written) when the file already holds exactly them. `remember`: keep
    its rows for the next reader in this process (see _PARSED)."""
    path = messages_path(folder)
    rows = list(rows)
    data = render(rows)
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    temp = fileops.temp_path_beside(path)
    try:
        temp.write_bytes(data)
        os.chmod(temp, fileops.new_file_mode())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    remember = remember and _KEEPING
    values = [tuple(entry.get(name, "") for name in FIELDS) for entry in rows] if remember else []
    if remember and all(type(value) is str for row in values for value in row):
        # what reading `data` back gives (csv keeps every str as it is), without parsing it
        _remember(os.path.abspath(path), data, tuple(values))
    return True


def add_rows(folder, new_rows, existing=None) -> None:
    """Add the rows of newly saved files (a row for a name already listed
    replaces it: the name now holds that file). `existing`: the folder's
    rows as read earlier in the run (not read again)."""
    new_rows = list(new_rows)
    if not new_rows:
        return
    names = {entry["file"] for entry in new_rows}
    rows = read_rows(folder) if existing is None else existing
    kept = [entry for entry in rows if entry["file"] not in names]
    write_rows(folder, kept + sorted(new_rows, key=lambda e: (e["posted_at"], e["file"])))


def record_renames(folder, mapping) -> None:
    """Files of `folder` were renamed ({old: new}, at once): rows follow.
    Row by row into a temp file (the bytes write_rows would write), so
    100,000 rows are never held in memory; a file with other columns is
    read and written whole."""
    path = messages_path(folder)
    if not path.exists():
        return
    renamed = None
    with open(path, encoding="utf-8-sig", newline="", errors="surrogateescape") as handle:
        reader = csv.reader(handle)
        if next(reader, None) == list(FIELDS):
            hits: list = []
            renamed = _stream_rows(path, _renamed_cells(reader, mapping, hits), replace=lambda: bool(hits))
    if renamed is None:
        rows = read_rows(folder)
        if any(entry["file"] in mapping for entry in rows):
            write_rows(folder, [{**entry, "file": mapping.get(entry["file"], entry["file"])} for entry in rows])


def _renamed_cells(reader, mapping, hits):
    width = len(FIELDS)
    for cells in reader:
        if cells:
            new = mapping.get(cells[0])
            if new is not None:
                cells[0] = new
                hits.append(new)
            yield cells[:width] + [""] * (width - len(cells))


def _stream_rows(path: Path, rows, replace=None) -> bool:
    """Write FIELDS-ordered `rows` (an iterable: never all held at once) as
    `path`, through a temp file, in the bytes render() gives; False (and
    nothing replaced) when the file already holds exactly them, or when
    `replace()`, asked once all rows are written, says no (a file that no
    rename touched keeps its own bytes, a spreadsheet's BOM and all)."""
    temp = fileops.temp_path_beside(path)
    try:
        with open(temp, "w", encoding="utf-8", newline="", errors="surrogateescape") as out:
            _write_cells(out, rows)   # the bytes render gives
        if (replace is not None and not replace()) or _same_bytes(temp, path):
            return False
        os.chmod(temp, fileops.new_file_mode())
        os.replace(temp, path)
        return True
    finally:
        temp.unlink(missing_ok=True)


def _same_bytes(a: Path, b: Path) -> bool:
    try:
        return filecmp.cmp(a, b, shallow=False)
    except FileNotFoundError:
        return False


def sync_rows(source, output, names) -> bool:
    """Make `output`'s messages.csv hold the source's rows of `names` (the
    files a copy step has in `output`), in the source's order. Nothing
    happens when the source has no messages.csv (downloaded with
    --no-messages, or by an older version)."""
    path = messages_path(source)
    if not path.exists():
        return False
    names = set(names)
    # streamed: dedupe keeps 66,800 rows of 100,000, never all in memory at once
    return _stream_rows(messages_path(output), (values for values in _rows_of(path) if values[0] in names))


def _rows_of(path: Path):
    """The rows of `path` as FIELDS tuples: the remembered ones when they
    are of its very bytes, else parsed as read and not remembered (a step
    that keeps a few rows of 100,000 does not hold them all)."""
    known = _PARSED.get(os.path.abspath(path))
    if known is not None:
        try:
            if path.read_bytes() == known[0]:
                yield from known[1]
                return
        except FileNotFoundError:
            return
    try:
        with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
            yield from _tuples(csv.reader(handle))
    except FileNotFoundError:
        return
