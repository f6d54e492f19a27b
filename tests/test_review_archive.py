"""review_archive.py: the page model (pure), then the whole step through
main(argv) on real images after real dedupe / one-per-day runs, the page
rendered in a real headless Chromium (DOM after load, a screenshot, and the
browser's own network log)."""
import json
import os
import re
import shutil
import struct
import subprocess
from datetime import date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import chart_image, image_bytes, n, write_image

import deduplicate_images
import extract_one_per_day
import quality_check_timestamps
import review_archive
from discordpicextract import naming
from discordpicextract.review import model as rm
from discordpicextract.review import pairs as rp
from discordpicextract.review import render
from discordpicextract.review.folder import PAGE_FILE, RECORD_FILE

XSS = "<img src=x onerror=alert(1)>.png"


# --- the model ----------------------------------------------------------------

def listing(folder, names):
    folder = Path(folder)
    return naming.FolderListing([naming.ImageFile(folder / name, naming.parse_name(name)) for name in names], [])


def inputs(download, clean=None, daily=None):
    given = [(rm.DOWNLOAD, "dl", download), (rm.CLEAN, "clean", clean), (rm.DAILY, "daily", daily)]
    return [rm.FolderInput(role, Path(path), listing(path, names)) for role, path, names in given if names is not None]


A, B, C = n("2025-06-02T10:00:00", "a.png"), n("2025-06-02T10:00:30", "b.png"), n("2025-06-02T17:00:00", "c.png")
D, E, F = n("2025-06-03T12:00:00", "d.png"), n("2025-06-09T08:00:00", "e.png"), n("2025-06-20T12:00:00", "f.png")


def test_model_flags_pairs_picks_sessions_and_reminder_days_first():
    folders = inputs([A, B, C, D, E, F], [A, C, D, E, F], [C, D, E, F])
    entries = rm.plan_entries(folders)
    page = rm.plan_review(folders, entries, {B: rm.Pair(A, 30.0, 0)})
    by_name = {e.name: e for e in page.entries}
    assert [e.name for e in page.entries] == [A, B, C, D, E, F]
    assert {e.name for e in page.outside} == {C, E}
    assert {e.name for e in page.entries if e.pick} == {C, D, E, F}
    assert [e.name for e in page.removed] == [B] and by_name[B].pair.kept == A and not page.unmatched
    first_day = next(d for d in page.days if d.date == date(2025, 6, 2))
    assert [(t.entry.name, [x.name for x in t.duplicates]) for t in first_day.tiles] == [(A, [B]), (C, [])]
    # Outside-hours dates 06-02 and 06-09, and 06-09 (08:00 only) estimated as a
    # shifted period: the reminder's windows, and those days first.
    assert [(r.first, r.last) for r in page.reminders] == [
        (date(2025, 5, 30), date(2025, 6, 2)), (date(2025, 6, 9), date(2025, 6, 12)),
        (date(2025, 6, 6), date(2025, 6, 9)), (date(2025, 6, 9), date(2025, 6, 12))]
    assert page.reminders[2].why.startswith("where period 1 (2025-06-09..2025-06-09, names -")
    assert [d.date.day for d in page.days] == [2, 9, 3, 20]
    assert [d.reminder for d in page.days] == [True, True, False, False]
    # Sessions 06-02..06-20 without an image; 06-19 (Juneteenth) is no session.
    assert date(2025, 6, 4) in page.missing_sessions and date(2025, 6, 19) not in page.missing_sessions
    assert len(page.missing_sessions) == 15 - 1 - 4  # weekdays, Juneteenth, dates with images
    summary = {f.role: f for f in page.folders}
    assert (summary[rm.DOWNLOAD].images, summary[rm.DOWNLOAD].outside) == (6, 2)
    assert (summary[rm.DAILY].images, summary[rm.DAILY].outside) == (4, 2)
    assert not page.verified and not page.wrong_time


def test_a_removed_image_without_a_match_stands_alone_and_flagged():
    folders = inputs([A, B, D], [A, D])
    page = rm.plan_review(folders, rm.plan_entries(folders), {})
    assert [e.name for e in page.unmatched] == [B]
    day = next(d for d in page.days if d.date == date(2025, 6, 2))
    assert [t.entry.name for t in day.tiles] == [A, B]
    html = render.render_page(page, {}, {}, Path("review"), datetime(2025, 7, 1))
    assert "matches no kept image" in html


def test_nothing_is_removed_before_dedupe_ran():
    for folders in (inputs([A, B]), inputs([A, B], [])):
        assert not rm.plan_review(folders, rm.plan_entries(folders), {}).removed


def test_pair_candidates_are_kept_images_of_the_same_date_not_later():
    later = n("2025-06-02T11:00:00", "later.png")
    folders = inputs([A, B, D, later], [A, D, later])
    candidates = rm.pair_candidates(rm.plan_entries(folders))
    assert {name: [k.name for k in kept] for name, kept in candidates.items()} == {B: [A]}


def test_choose_pair_takes_the_nearest_then_same_size_then_earliest():
    folders = inputs([A, B, C], [A, C])
    entries = {e.name: e for e in rm.plan_entries(folders)}

    def known(size, phash):
        return rp._Known("k", size, "s", None, phash)

    facts = {B: known(10, "ff00ff00ff00ff00"), A: known(11, "ff00ff00ff00ff01"), C: known(10, "ff00ff00ff00ff01")}
    # A and C are both 1 bit away; C has B's size although A is earlier.
    assert rp.choose_pair(entries[B], [entries[A], entries[C]], facts) == rm.Pair(C, -(6 * 3600 + 59 * 60 + 30), 1)
    facts[C] = known(10, "00ff00ff00ff00ff")
    assert rp.choose_pair(entries[B], [entries[A], entries[C]], facts).kept == A
    facts[A] = known(10, "0000000000000000")
    assert rp.choose_pair(entries[B], [entries[A], entries[C]], facts) is None  # nothing near enough


def test_post_times_mark_the_names_that_differ():
    folders = inputs([A, D])
    stamp_a = naming.parse_name(A).timestamp
    posts = {A: stamp_a + timedelta(hours=1, milliseconds=250), D: naming.parse_name(D).timestamp}
    page = rm.plan_review(folders, rm.plan_entries(folders, posts), {}, verified=True)
    assert [e.name for e in page.known_time] == [A, D]
    assert [(e.name, e.time_off) for e in page.wrong_time] == [(A, timedelta(hours=1))]
    html = render.render_page(page, {}, {}, Path("review"), datetime(2025, 7, 1))
    assert len(re.findall(r'<figure class="tile[^"]*wrong-time', html)) == 1
    assert "posted 11:00:00 (+1h00m)" in html


def test_contact_sheets_hold_each_day_s_thumbnails_once_in_rows_and_chunks():
    from discordpicextract.review import sheets
    from discordpicextract.review.thumbs import Thumb

    day1 = [Thumb(f"thumbs/{i:032x}.webp", 240, 100 + i) for i in range(sheets.SHEET_TILES + 3)]
    day2 = [day1[0], day1[0], Thumb("thumbs/" + "f" * 32 + ".webp", 200, 90)]
    plans, places = sheets.plan_sheets([day1, day2], ".webp")
    assert [len(plan.tiles) for plan in plans] == [sheets.SHEET_TILES, 3, 2]
    # The tenth tile starts the second row, below the first row's tallest thumbnail.
    tenth = places[0][day1[9].file]
    assert (tenth.file, tenth.x, tenth.y) == (plans[0].file, (9 - sheets.SHEET_COLUMNS) * 240, 100 + 7)
    rows = sheets.SHEET_TILES // sheets.SHEET_COLUMNS
    assert plans[0].height == sum(100 + (r + 1) * sheets.SHEET_COLUMNS - 1 for r in range(rows))
    assert places[0][day1[-1].file].file == plans[1].file
    assert places[1][day1[0].file] == sheets.Place(plans[2].file, 0, 0, 240, 100)  # once, on day 2's own sheet
    # named by what they hold: the same day plans the same sheet again
    assert sheets.plan_sheets([day1], ".webp")[0][0] == plans[0] and len({p.file for p in plans}) == 3


# --- the step, end to end ----------------------------------------------------------

@pytest.fixture
def archive(tmp_path):
    """Download, clean and one-per-day folders made by the real steps; a
    dedupe report; names that must stay text in the page; both ends of the
    session (inside) and a second before it (outside); byte copies, and a
    look-alike (same pixels and size, other bytes) that only pHash pairs."""
    from PIL import PngImagePlugin

    download = tmp_path / "dl"
    plan = [("2025-06-02T09:00:00", "early.png", 1), ("2025-06-02T10:00:00", "a.png", 2),
            ("2025-06-02T10:00:40", "a-again.png", 2), ("2025-06-02T12:00:00", "b.jpg", 3),
            ("2025-06-02T16:30:00", "late.png", 4), ("2025-06-03T09:30:00", "opening.png", 10),
            ("2025-06-03T11:00:00", "d.png", 5), ("2025-06-03T11:02:00", "d2.png", 5),
            ("2025-06-03T11:05:00", "d3.png", 5), ("2025-06-03T13:00:00", XSS, 6),
            ("2025-06-03T14:00:00", "a #1 100%.png", 7), ("2025-06-05T09:29:59", "before-open.png", 11),
            ("2025-06-05T15:00:00", "e.png", 8), ("2025-06-05T16:00:00", "closing.png", 12),
            ("2025-06-06T10:00:00", "f.png", 9)]
    written = {}
    for stamp, original, seed in plan:
        name = n(stamp, original)
        if seed in written:
            shutil.copyfile(written[seed], download / name)  # the same image posted again
        else:
            written[seed] = write_image(download / name, seed=seed, size=(320, 200))
    tags = []
    for text in ("first", "again"):  # equally long chunks: same size, other bytes
        tags.append(PngImagePlugin.PngInfo())
        tags[-1].add_text("Comment", text)
    look = chart_image(13, (320, 200))
    look.save(download / n("2025-06-06T11:00:00", "g.png"), pnginfo=tags[0])
    look.save(download / n("2025-06-06T11:01:30", "g-retagged.png"), pnginfo=tags[1])
    clean, daily, report = tmp_path / "clean", tmp_path / "daily", tmp_path / "dupes.csv"
    assert deduplicate_images.main(["--source", str(download), "--output", str(clean), "--report", str(report),
                                    "--workers", "1"]) == 0
    assert extract_one_per_day.main(["--source", str(clean), "--output", str(daily)]) == 0
    return download, clean, daily, report


def folder_args(archive):
    return ["--folders", *map(str, archive[:3])]


def quality_check(folder, plot, capsys):
    """(files outside hours, the date ranges its reminder names) as printed."""
    capsys.readouterr()
    quality_check_timestamps.main(["--folder", str(folder), "--no-adjust", "--plot", str(plot)])
    out = capsys.readouterr().out
    found = re.search(r"Total: (\d+) file\(s\) outside trading hours", out)
    ranges = re.findall(r"(?:around|check) (\d{4}-\d\d-\d\d) to (\d{4}-\d\d-\d\d)", out)
    return int(found.group(1)) if found else 0, sorted(set(ranges))


def test_review_page_in_a_real_browser(archive, tmp_path, capsys):
    download, clean, daily, report = archive
    checks = {role: quality_check(folder, tmp_path / "plot.png", capsys) for role, folder in zip(rm.ROLES, archive)}
    expected_outside = {role: check[0] for role, check in checks.items()}
    assert expected_outside == {rm.DOWNLOAD: 3, rm.CLEAN: 3, rm.DAILY: 1}
    review = tmp_path / "review"
    code = review_archive.main([*folder_args(archive), "--output", str(review), "--workers", "2"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"Review page: {review / PAGE_FILE}" in out
    page = (review / PAGE_FILE).read_text(encoding="utf-8")
    assert_offline_source(page)

    dom, shot, requests = render_in_browser(review / PAGE_FILE, tmp_path)
    assert not requests, f"the page asked for {requests}"
    figures = parse_figures(dom)
    every = {p.name for folder in archive[:3] for p in folder.iterdir() if not p.name.startswith(".")}
    assert sorted(f["name"] for f in figures) == sorted(every)  # each image once
    for figure in figures:
        assert figure["img"] and (review / figure["img"]).is_file(), figure
        assert_crop_shows(review / figure["img"], figure["crop"], download / figure["name"])
    for role in rm.ROLES:
        flagged = [f for f in figures if "outside" in f["class"] and role in f["in"]]
        assert len(flagged) == expected_outside[role], role
    # Duplicates sit beside the image dedupe kept (its --report says which).
    dedupe_pairs = {row["removed"]: row["kept"] for row in _csv_rows(report)}
    assert len(dedupe_pairs) == 4 and "phash distance 0" in {row["match"] for row in _csv_rows(report)}
    beside = {f["name"]: f["group_first"] for f in figures if "removed" in f["class"]}
    assert beside == dedupe_pairs
    assert sorted(f["name"] for f in figures if "pick" in f["class"]) == sorted(p.name for p in daily.iterdir()
                                                                         if not p.name.startswith("."))
    # A name is data: the XSS name is a caption, not an element.
    assert n("2025-06-03T13:00:00", XSS) in {f["name"] for f in figures}
    assert_offline_source(dom)  # no on* attribute, no src="x": markup never comes from a name
    assert "&lt;img src=x onerror=alert(1)&gt;.png</span>" in dom
    # The reminder names what the quality check's names (it reads the clean
    # folder), and those days come first: 05-30..06-02 and 06-05..06-08.
    named = re.findall(r"<li>(\d{4}-\d\d-\d\d) to (\d{4}-\d\d-\d\d): ", dom)
    assert sorted(set(named)) == checks[rm.CLEAN][1] and named
    assert re.findall(r'<section class="day[^"]*" id="d-([\d-]+)"', dom) == \
        ["2025-06-02", "2025-06-05", "2025-06-06", "2025-06-03"]
    assert_real_screenshot(shot)

    # A re-run makes no thumbnail and decodes nothing.
    assert review_archive.main([*folder_args(archive), "--output", str(review)]) == 0
    out = capsys.readouterr().out
    assert "Thumbnails: 0 made, 0 reused, 17 cached, 0 failed" in out and "contact sheets: 0 made" in out


def test_post_times_from_the_download_archive_mark_names_that_differ(tmp_path, capsys):
    """The download archive ties each file to its message, whose snowflake
    is its post time: a name an hour off is marked, on its tile and dot."""
    from zoneinfo import ZoneInfo

    from discordpicextract import archive as download_archive
    from discordpicextract.emulator import snowflake_for

    download = tmp_path / "dl"
    download.mkdir()
    right, wrong = n("2025-06-02T10:00:00", "right.png"), n("2025-06-02T12:00:00", "wrong.png")
    with download_archive.DownloadArchive(download) as archive:
        for seed, (name, posted) in enumerate([(right, "2025-06-02T10:00:00"), (wrong, "2025-06-02T11:00:00")]):
            path = write_image(download / name, seed=seed)
            when = datetime.fromisoformat(posted).replace(tzinfo=ZoneInfo("America/New_York"))
            archive.add(f"item-{seed}", str(snowflake_for(when)), name, path.stat().st_size, "0" * 64)
    assert review_archive.main(["--folders", str(download), "--output", str(tmp_path / "review")]) == 0
    assert "Post times: 2 known, 1 named at another time" in capsys.readouterr().out
    page = (tmp_path / "review" / PAGE_FILE).read_text(encoding="utf-8")
    marked = re.findall(r'<figure class="tile[^"]*wrong-time[^"]*" data-name="([^"]+)"', page)
    assert marked == [wrong] and "posted 11:00:00 (−1h00m)" in page
    assert len(re.findall(r'<circle class="dot[^"]* off"', page)) == 1


def test_open_shows_the_page_in_the_default_browser(archive, tmp_path, monkeypatch):
    opened = []
    monkeypatch.setattr(review_archive.webbrowser, "open", opened.append)
    assert review_archive.main([*folder_args(archive), "--output", str(tmp_path / "r"), "--open"]) == 0
    assert opened == [(tmp_path / "r" / PAGE_FILE).resolve().as_uri()]


def test_dedupe_report_gives_the_same_pairs(archive, tmp_path, capsys):
    review = tmp_path / "review"
    assert review_archive.main([*folder_args(archive), "--output", str(review), "--dedupe-report",
                                str(archive[3])]) == 0
    by_report = (review / PAGE_FILE).read_text(encoding="utf-8")
    assert review_archive.main([*folder_args(archive), "--output", str(review)]) == 0
    recomputed = (review / PAGE_FILE).read_text(encoding="utf-8")
    assert _groups(by_report) == _groups(recomputed) and len(_groups(recomputed)) == 3


def test_a_report_pair_whose_kept_image_left_the_clean_folder_is_unmatched(archive, tmp_path, capsys):
    """The report says what dedupe kept then; a kept image deleted from the
    clean folder since leaves it and its duplicates in no folder but the
    download one: each flagged for a look (as without the report), not
    shown as a duplicate of a kept image."""
    download, clean, daily, report = archive
    kept = {row["kept"] for row in _csv_rows(report)}
    gone = sorted(kept)[0]
    (clean / gone).unlink()
    (daily / gone).unlink(missing_ok=True)
    orphans = sorted([gone] + [row["removed"] for row in _csv_rows(report) if row["kept"] == gone])
    review = tmp_path / "review"
    assert review_archive.main([*folder_args(archive), "--output", str(review), "--dedupe-report",
                                str(report)]) == 1
    err = capsys.readouterr().err
    for name in orphans:
        assert f"warning: {name} is not in the clean folder and duplicates no kept image" in err
    figures = parse_figures((review / PAGE_FILE).read_text(encoding="utf-8"))
    assert sorted(f["name"] for f in figures if "removed" in f["class"] and f["group_first"] is None) == orphans


def test_only_a_new_empty_or_earlier_review_folder_is_written(archive, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    assert review_archive.main([*folder_args(archive), "--output", str(mine)]) == 2
    assert "holds files the review did not write" in capsys.readouterr().err
    assert sorted(os.listdir(mine)) == ["notes.txt"]
    assert review_archive.main([*folder_args(archive), "--output", str(archive[1])]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert review_archive.main([*folder_args(archive), "--output", str(empty)]) == 0
    assert {PAGE_FILE, RECORD_FILE, "thumbs", "sheets"} <= set(os.listdir(empty))


def test_defaults_and_a_damaged_image(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    import config

    download = Path(config.DEFAULT_OUTPUT_DIR)
    good = write_image(download / n("2025-06-02T10:00:00", "good.png"), seed=1)
    broken = download / n("2025-06-02T11:00:00", "broken.png")
    broken.write_bytes(good.read_bytes()[:200])
    text = download / n("2025-06-02T12:00:00", "text.png")
    text.write_text("not an image")
    assert review_archive.main([]) == 1  # images that cannot be shown: a look is needed
    captured = capsys.readouterr()
    assert f"{broken.name}: cannot decode" in captured.err
    # Pillow's "cannot identify image file <_io.BytesIO object at 0x...>" says nothing to a user
    assert f"{text.name}: cannot decode: not an image format Pillow reads; shown" in captured.err
    assert "BytesIO" not in captured.err
    page = (Path(config.REVIEW_DIR) / PAGE_FILE).read_text(encoding="utf-8")
    assert page.count("<figure") == 3 and page.count('class="broken"') == 2
    Path(config.DEFAULT_OUTPUT_DIR).rename("elsewhere")
    assert review_archive.main([]) == 2
    assert "none of the pipeline folders exists" in capsys.readouterr().err


def test_a_name_that_is_not_utf8_links_to_its_bytes_and_shows_as_text(tmp_path, capsys):
    """A file copied from elsewhere may carry a name in another encoding:
    the page links to its very bytes and shows what can be shown."""
    download = tmp_path / "dl"
    good = write_image(download / n("2025-06-02T10:00:00", "good.png"), seed=1)
    raw = os.fsencode(download) + b"/2025-06-02_10-05-00_\xff\xfe.png"
    with open(raw, "wb") as handle:
        handle.write(image_bytes(seed=2))
    review = tmp_path / "review"
    assert review_archive.main(["--folders", str(download), "--output", str(review)]) == 0
    page = (review / PAGE_FILE).read_text(encoding="utf-8")
    assert 'href="../dl/2025-06-02_10-05-00_%FF%FE.png"' in page
    assert "<span class=\"name\">2025-06-02_10-05-00_\ufffd\ufffd.png</span>" in page
    assert page.count("<figure") == 2 and good.name in page


def test_a_damaged_thumbnail_of_ours_is_made_again(tmp_path, capsys):
    """A thumbnail damaged on disk (not by us: ours are written atomically)
    is made again from its source, with or without the record."""
    from PIL import Image

    download = tmp_path / "dl"
    for seed in range(3):
        write_image(download / n(f"2025-06-02T1{seed}:00:00", f"c{seed}.png"), seed=seed, size=(320, 200))
    review = tmp_path / "review"
    args = ["--folders", str(download), "--output", str(review), "--workers", "1"]
    assert review_archive.main(args) == 0
    thumbs = sorted((review / "thumbs").iterdir())
    for damage_record in (False, True):
        thumbs[0].write_bytes(thumbs[0].read_bytes()[:60])
        shutil.rmtree(review / "sheets")
        if damage_record:
            (review / RECORD_FILE).write_text("{not json")
        capsys.readouterr()
        assert review_archive.main(args) == 0, capsys.readouterr().err
        out = capsys.readouterr().out
        assert "Thumbnails: 1 made" in out and "contact sheets: 1 made" in out, out
        with Image.open(thumbs[0]) as again:
            again.load()
        assert again.width == 240


def test_a_re_run_renders_only_the_days_that_changed_and_writes_what_a_fresh_review_writes(archive, tmp_path,
                                                                                          capsys):
    """Each day's section is kept in parts/ under the digest of what it
    shows: a re-run takes the unchanged days from there; a new image (and
    the pick it becomes) renders its own day again; a damaged part is
    rendered again, never pasted. The page is always the one a review into
    a new folder writes."""
    download, clean, daily, _report = archive
    review = tmp_path / "review"

    def run(output):
        capsys.readouterr()
        assert review_archive.main([*folder_args(archive), "--output", str(output), "--workers", "1"]) == 0
        out = capsys.readouterr().out
        made, reused = map(int, re.search(r"days: (\d+) made, (\d+) reused", out).groups())
        return made, reused, re.sub(r"Written [\d-]+ [\d:]+ ", "", (output / PAGE_FILE).read_text("utf-8"))

    assert run(review)[:2] == (4, 0)
    made, reused, page = run(review)
    assert (made, reused) == (0, 4)
    assert page == run(tmp_path / "fresh-1")[2]

    # a later image on 2025-06-05: the day's new pick; the other days stay as they were
    write_image(download / n("2025-06-05T15:30:00", "later.png"), seed=21, size=(320, 200))
    assert deduplicate_images.main(["--source", str(download), "--output", str(clean), "--workers", "1"]) == 0
    assert extract_one_per_day.main(["--source", str(clean), "--output", str(daily)]) == 0
    made, reused, page = run(review)
    assert (made, reused) == (1, 3)
    assert "later.png" in page and page == run(tmp_path / "fresh-2")[2]
    assert len(list((review / "parts").iterdir())) == 4  # the day's old section is gone

    # a part damaged on disk (same name, other bytes) is rendered again
    part = next(p for p in (review / "parts").iterdir() if "later.png" in p.read_text("utf-8"))
    part.write_text(part.read_text("utf-8").replace("later.png", "other.png"), "utf-8")
    made, reused, again = run(review)
    assert (made, reused) == (1, 3) and again == page


# --- helpers ---------------------------------------------------------------------

def _csv_rows(path):
    import csv

    return list(csv.DictReader(Path(path).read_text(encoding="utf-8").splitlines()))


def _groups(html):
    return re.findall(r'<div class="group".*?</figure></div>', html)


def assert_offline_source(page):
    """Every src/href is relative or a fragment; no script, no stylesheet
    link, no event handler attribute."""
    class Links(HTMLParser):
        def __init__(self):
            super().__init__()
            self.links, self.tags = [], set()

        def handle_starttag(self, tag, attrs):
            self.tags.add(tag)
            self.links += [value for key, value in attrs if key in ("src", "href", "srcset", "action")]
            assert not [key for key, _ in attrs if key.startswith("on")], (tag, attrs)

    parser = Links()
    parser.feed(page)
    assert parser.links and not {"script", "link", "iframe", "object", "embed"} & parser.tags
    for link in parser.links:
        assert link != "x", "a file name became markup"
        assert not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//", link) or link.startswith("data:"), link
    assert "@import" not in page and "url(" not in page


class Figures(HTMLParser):
    """Each <figure>: name, classes, folders, its thumbnail, and the first
    figure of the duplicate group it sits in."""

    def __init__(self):
        super().__init__()
        self.figures, self.group, self.current = [], None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "div" and attrs.get("class") == "group":
            self.group = []
        elif tag == "figure":
            self.current = {"name": attrs["data-name"], "class": attrs["class"].split(),
                            "in": attrs["data-in"].split(), "img": None, "group_first": None, "crop": None}
            if self.group is not None:
                self.current["group_first"] = self.group[0]["name"] if self.group else None
                self.group.append(self.current)
            self.figures.append(self.current)
        elif tag == "img" and self.current is not None:
            self.current["img"] = attrs["src"]
            x, y = re.match(r"object-position:(-?\d+)px (-?\d+)px", attrs["style"]).groups()
            self.current["crop"] = (-int(x), -int(y), int(attrs["width"]), int(attrs["height"]))

    def handle_endtag(self, tag):
        if tag == "figure":
            self.current = None
        elif tag == "div" and self.group is not None and self.current is None:
            self.group = None


def parse_figures(dom):
    parser = Figures()
    parser.feed(dom)
    return parser.figures


def find_browser():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI") == "true":
        pytest.fail("no chromium in CI: .ci/run installs Debian's chromium with apt-get")
    pytest.skip("no headless browser here: install Debian's chromium (apt-get install chromium) to run this test")


BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--disable-extensions", "--no-default-browser-check",
                 # Belt and braces: no host name resolves, whatever the browser itself wants.
                 "--host-resolver-rules=MAP * ~NOTFOUND", "--hide-scrollbars", "--window-size=1280,1800"]


def render_in_browser(page: Path, tmp_path):
    """(DOM after load, screenshot path, the page's own non-file requests)."""
    browser = find_browser()
    profile, shot, netlog = tmp_path / "profile", tmp_path / "shot.png", tmp_path / "net.json"
    result = subprocess.run([browser, *BROWSER_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}",
                             f"--log-net-log={netlog}", "--dump-dom", page.resolve().as_uri()],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "<figure" in result.stdout, result.stderr[-2000:]
    return result.stdout, shot, page_requests(netlog)


def page_requests(netlog: Path):
    """URLs the page asked for, from Chromium's NetLog. The browser's own
    background requests carry the initiator "not an origin"; a file:// page's
    requests carry "null" (file URLs themselves never reach the network
    stack, so any URL here besides the browser's own is a leak)."""
    text = netlog.read_text(encoding="utf-8")
    try:
        log = json.loads(text)
    except ValueError:  # a log cut short at exit lacks its closing brackets
        log = json.loads(text.rstrip().rstrip(",") + "]}")
    urls, initiators = {}, {}
    for event in log["events"]:
        params, source = event.get("params") or {}, event["source"]["id"]
        if "url" in params:
            urls.setdefault(source, params["url"])
        if "initiator" in params:
            initiators[source] = params["initiator"]
    return sorted(url for source, url in urls.items()
                  if initiators.get(source, "not an origin") != "not an origin"
                  and not url.startswith(("file:", "data:")))


def assert_crop_shows(sheet: Path, crop, source: Path):
    """The tile's crop of its contact sheet is its own image (lossy WebP:
    close, not equal; another image's crop is far off)."""
    from PIL import Image, ImageChops, ImageStat

    x, y, width, height = crop
    with Image.open(sheet) as whole, Image.open(source) as original:
        assert x + width <= whole.width and y + height <= whole.height
        shown = whole.convert("RGB").crop((x, y, x + width, y + height))
        expected = original.convert("RGB").resize((width, height))
    difference = sum(ImageStat.Stat(ImageChops.difference(shown, expected)).mean) / 3
    assert difference < 4, (source.name, difference)  # measured: right crops <= 1.8, a wrong one 9.6


def assert_real_screenshot(shot: Path):
    from PIL import Image

    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", data[16:24]) == (1280, 1800)
    with Image.open(shot) as image:
        colours = image.convert("RGB").resize((320, 450)).getcolors(1 << 16)
    assert colours is None or len(colours) > 500  # thumbnails drawn, not a blank page


def test_verbose_says_which_days_were_rebuilt_and_reused_and_each_thumbnail_made(archive, tmp_path, capsys):
    out_dir = ["--output", str(tmp_path / "page")]
    capsys.readouterr()
    assert review_archive.main([*folder_args(archive), *out_dir, "-v"]) == 0
    first = capsys.readouterr()
    dates = ["2025-06-02", "2025-06-03", "2025-06-05", "2025-06-06"]
    assert all(f"debug: day {day}: rebuilt (" in first.err for day in dates), first.err
    assert "debug: thumbnail made for " + n("2025-06-02T09:00:00", "early.png") in first.err   # a unique image
    assert "debug:" not in first.out and "Review page: " in first.out

    new = n("2025-06-09T10:00:00", "new.png")
    for folder in archive[:2]:   # downloaded and kept by dedupe
        write_image(folder / new, seed=99, size=(320, 200))
    assert review_archive.main([*folder_args(archive), *out_dir, "-v"]) == 0
    again = capsys.readouterr().err
    assert [line for line in again.splitlines() if line.startswith("debug: thumbnail")] == [
        f"debug: thumbnail made for {new}"]
    assert "debug: day 2025-06-09: rebuilt (1 image(s))" in again
    assert all(f"debug: day {day}: reused from the last run" in again for day in dates), again

    assert review_archive.main([*folder_args(archive), *out_dir]) == 0
    assert "debug:" not in capsys.readouterr().err
