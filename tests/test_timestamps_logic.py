"""The pure timestamp logic: snowflakes, zone records, wall-time conversion,
matching files to messages, verified and estimated periods."""
from datetime import date, datetime, time, timedelta, timezone

import pytest
from helpers import fill, n

import config
from discordpicextract import naming
from discordpicextract.emulator import snowflake_for
from discordpicextract.errors import UsageError
from discordpicextract.timestamps import convert, periods, truth, zone

UTC = timezone.utc
NY = "America/New_York"
START, END = 9 * 3600 + 1800, 16 * 3600


# --- snowflakes ------------------------------------------------------------------

def test_snowflake_time_is_the_post_time_to_the_millisecond():
    # Discord's documented example: 175928847299117063 -> 2016-04-30 11:18:25.796 UTC
    assert truth.snowflake_time(175928847299117063) == datetime(2016, 4, 30, 11, 18, 25, 796000, UTC)
    when = datetime(2025, 11, 2, 5, 30, 0, 123000, UTC)
    assert truth.snowflake_time(str(snowflake_for(when, 77))) == when
    assert truth.snowflake_time("not-a-number") is None
    assert truth.snowflake_time(0) is None


def test_format_offset():
    assert truth.format_offset(timedelta(hours=5)) == "+5:00:00"
    assert truth.format_offset(-3600) == "-1:00:00"
    assert truth.format_offset(timedelta(seconds=7)) == "+0:00:07"
    assert truth.format_offset(timedelta(hours=-4, minutes=-30, seconds=-1)) == "-4:30:01"


# --- the recorded zone -----------------------------------------------------------

def test_zone_record_read_and_default(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    assert zone.read_zone(folder) is None
    assert zone.folder_zone(folder) == config.TIMEZONE
    zone.record_zone(folder, "Asia/Shanghai")
    assert zone.read_zone(folder) == "Asia/Shanghai"
    assert zone.folder_zone(folder, override="UTC") == "UTC"
    assert not any(p.name.endswith(".part") for p in folder.iterdir())  # written through a temp file
    (folder / config.FOLDER_INFO_FILE).write_text('{"names_zone": "Mars/Olympus"}')
    with pytest.raises(UsageError, match="unknown time zone"):
        zone.read_zone(folder)
    (folder / config.FOLDER_INFO_FILE).write_text("{not json")
    with pytest.raises(UsageError, match="cannot read"):
        zone.read_zone(folder)


def test_folders_in_different_zones_are_one_error_naming_them(tmp_path):
    a, b, c = (tmp_path / x for x in "abc")
    for folder in (a, b, c):
        folder.mkdir()
    zone.record_zone(a, "UTC")
    zone.record_zone(b, NY)
    with pytest.raises(UsageError) as caught:
        zone.common_zone([a, b, c])
    assert f"{a} (UTC)" in str(caught.value) and f"{b} ({NY})" in str(caught.value)
    assert zone.common_zone([b, c]) == NY          # unrecorded c is read in config.TIMEZONE
    assert zone.common_zone([a, b], override="UTC") == "UTC"


def test_claim_refuses_to_mix_zones_in_one_folder(tmp_path):
    folder = fill(tmp_path / "f", [n("2025-03-10T10:00:00")])
    with pytest.raises(UsageError, match="would mix two zones"):
        zone.claim_zone(folder, "UTC")       # unrecorded names: config.TIMEZONE
    assert zone.read_zone(folder) is None
    zone.claim_zone(folder, config.TIMEZONE)
    assert zone.read_zone(folder) == config.TIMEZONE
    empty = tmp_path / "empty"
    empty.mkdir()
    zone.claim_zone(empty, "UTC")
    assert zone.read_zone(empty) == "UTC"


# --- wall-time conversion --------------------------------------------------------

def test_ambiguous_and_nonexistent_wall_times_are_named_and_deterministic():
    assert convert.wall_note(datetime(2025, 11, 2, 1, 30), NY) == convert.AMBIGUOUS
    assert convert.wall_note(datetime(2025, 3, 9, 2, 30), NY) == convert.NONEXISTENT
    assert convert.wall_note(datetime(2025, 3, 9, 3, 30), NY) is None
    # ambiguous: the first occurrence (EDT); nonexistent: the offset before the change (EST)
    assert convert.convert_wall(datetime(2025, 11, 2, 1, 30), NY, "UTC") == datetime(2025, 11, 2, 5, 30)
    assert convert.convert_wall(datetime(2025, 3, 9, 2, 30), NY, "UTC") == datetime(2025, 3, 9, 7, 30)


@pytest.mark.parametrize("utc, local", [
    ("2025-03-09T06:59:59", "2025-03-09T01:59:59"),   # last EST second
    ("2025-03-09T07:00:00", "2025-03-09T03:00:00"),   # first EDT second
    ("2025-11-02T05:30:00", "2025-11-02T01:30:00"),   # the repeated hour, first time
    ("2025-11-02T06:30:00", "2025-11-02T01:30:00"),   # and again
    ("2025-11-02T07:00:00", "2025-11-02T02:00:00"),
])
def test_utc_to_new_york_across_both_changes(utc, local):
    assert convert.convert_wall(datetime.fromisoformat(utc), "UTC", NY) == datetime.fromisoformat(local)


def test_two_files_wanting_one_name_are_numbered_like_the_downloader():
    first = convert.Wanted("b.png", "chart.png", datetime(2025, 11, 2, 1, 30), 1)
    second = convert.Wanted("a.png", "chart.png", datetime(2025, 11, 2, 1, 30), 2)
    right = convert.Wanted(n("2025-11-02T09:40:00", "x.png"), "x.png", datetime(2025, 11, 2, 9, 40), 3)
    targets = convert.plan_targets([second, first, right], staying={n("2025-11-02T01:30:00", "CHART_3.png")})
    assert targets.mapping == {"b.png": n("2025-11-02T01:30:00", "chart.png"),
                               "a.png": n("2025-11-02T01:30:00", "chart_2.png")}
    assert targets.unchanged == [right.name]
    blocked = convert.plan_targets([first, second], staying={n("2025-11-02T01:30:00", "Chart_2.png")})
    assert blocked.mapping["a.png"] == n("2025-11-02T01:30:00", "chart_3.png")  # case-insensitive, like Windows


# --- matching files to messages -----------------------------------------------------

def _row(key, when, filename, content, size=None):
    import hashlib

    return truth.ArchiveRow(key, str(snowflake_for(when)), filename, size or len(content),
                            hashlib.sha256(content).hexdigest())


def test_files_find_their_messages_by_name_then_by_content(tmp_path):
    folder = tmp_path / "f"
    posted = datetime(2025, 3, 10, 14, 0, tzinfo=UTC)        # 10:00 New York
    names = [n("2025-03-10T10:00:00", "own.png"), n("2025-03-10T15:00:00", "copy.png"),
             n("2025-03-10T11:11:11", "stranger.png")]
    fill(folder, names)
    data = [(folder / name).read_bytes() for name in names]
    own = [_row("1/attachment/1", posted, names[0], data[0])]
    other = [_row("2/attachment/2", posted + timedelta(hours=1), "whatever.png", data[1])]
    listing = naming.list_images(folder)
    matches = truth.match_messages(listing.images, own, other, NY)
    assert matches.known[names[0]].via == truth.BY_NAME
    assert matches.known[names[1]].via == truth.BY_CONTENT
    assert matches.known[names[1]].posted == posted + timedelta(hours=1)
    assert names[2] not in matches.known
    result = truth.plan_verification(listing, matches, NY)
    assert [c.name for c in result.agree] == [names[0]]
    assert [(c.name, c.offset) for c in result.differ] == [(names[1], timedelta(hours=4))]
    assert result.unknown == [names[2]]


def test_repeated_content_is_paired_by_its_neighbours_or_left_unknown(tmp_path):
    folder = tmp_path / "f"
    day = datetime(2025, 6, 2, 14, 0, tzinfo=UTC)                # 10:00 New York
    shifted = [n("2025-06-02T15:00:00", "a.png"), n("2025-06-02T15:01:00", "dup.png"),
               n("2025-06-02T16:00:00", "b.png")]                # every name +5 h (posted 10:00, 10:01, 11:00)
    fill(folder, shifted)
    a, dup, b = ((folder / name).read_bytes() for name in shifted)
    rows = [_row("1", day, "x", a), _row("3", day + timedelta(hours=1), "x", b),
            # dup's bytes were posted twice: 10:01 and 10:02
            _row("2", day + timedelta(minutes=1), "x", dup), _row("4", day + timedelta(minutes=2), "x", dup)]
    listing = naming.list_images(folder)
    matches = truth.match_messages(listing.images, [], rows, NY)
    assert matches.known[shifted[1]].message_id == rows[2].message_id   # the date's +5 h decides
    lone = tmp_path / "lone"
    fill(lone, [n("2025-06-02T23:59:00", "dup.png")])
    (lone / n("2025-06-02T23:59:00", "dup.png")).write_bytes(dup)
    only = truth.match_messages(naming.list_images(lone).images, [], rows, NY)
    assert only.known == {} and only.ambiguous == [n("2025-06-02T23:59:00", "dup.png")]


def test_archive_argument_is_a_folder_or_the_file(tmp_path):
    with pytest.raises(UsageError, match="no download archive"):
        truth.archive_file_for(tmp_path)
    with pytest.raises(UsageError, match="not found"):
        truth.archive_file_for(tmp_path / "nope")
    bad = tmp_path / "bad.sqlite3"
    bad.write_text("not a database")
    with pytest.raises(UsageError, match="cannot read the download archive"):
        truth.read_archive_rows(truth.archive_file_for(bad))


# --- periods ----------------------------------------------------------------------

def _seconds(*clock):
    return [periods.seconds_of(time.fromisoformat(c)) for c in clock]


def test_verified_periods_include_a_quiet_day_and_end_at_a_right_one():
    d = [date(2025, 3, 10) + timedelta(days=i) for i in range(7)]
    entries = [(d[0], 0), (d[1], -3600), (d[2], -3600), (d[3], -3600), (d[3], 0), (d[4], -3600),
               (d[5], 0), (d[6], 7)]
    assert periods.group_offsets(entries) == [
        periods.OffsetPeriod(d[1], d[4], -3600, 4), periods.OffsetPeriod(d[6], d[6], 7, 1)]


def _day(i):
    return date(2025, 1, 6) + timedelta(days=i)


FULL = ("09:31:00", "12:00:00", "15:58:00")


def test_a_quiet_day_inside_a_period_joins_it_and_edges_are_named():
    early = ("08:31:00", "11:00:00", "14:58:00")         # a full day, one hour early
    quiet_early = ("11:00:00", "12:00:00")               # fits 0 and -1
    days = {_day(0): _seconds(*FULL), _day(1): _seconds(*quiet_early), _day(2): _seconds(*early),
            _day(3): _seconds(*quiet_early), _day(4): _seconds(*early), _day(5): _seconds(*quiet_early),
            _day(6): _seconds(*FULL)}
    estimate = periods.estimate_periods(days, START, END, NY)
    [period] = estimate.periods
    assert (period.start, period.end, period.offset) == (_day(2), _day(4), -3600)
    assert period.edge_dates == [_day(1), _day(5)]
    assert period.adjust_line() == f"--adjust {_day(2)}:{_day(4)}:1"
    # the truth wins: with day 1 verified, the period starts there
    verified = periods.estimate_periods(days, START, END, NY, verified={_day(1): (-3600, False)})
    [period] = verified.periods
    assert (period.start, period.end) == (_day(1), _day(4))
    assert period.verified_dates == [_day(1)] and period.estimated_dates == [_day(2), _day(3), _day(4)]


def test_a_late_period_whose_mornings_land_inside_hours_is_found():
    late = ("14:31:00", "17:00:00", "20:58:00")        # +5 h: the mornings land at 14:30-16:00
    days = {_day(0): _seconds(*FULL), _day(1): _seconds(*late), _day(2): _seconds("14:40:00", "15:10:00"),
            _day(3): _seconds(*late), _day(4): _seconds(*FULL)}
    [period] = periods.estimate_periods(days, START, END, NY).periods
    assert (period.start, period.end, period.offset) == (_day(1), _day(3), 5 * 3600)


def test_utc_names_follow_daylight_saving_and_suggest_from_zone():
    days = {}
    current = date(2025, 2, 3)
    while current < date(2025, 12, 20):
        if current.weekday() < 5:
            offset = -periods.utc_offset_on(current, NY)    # names in UTC: +5 h in winter, +4 h in summer
            days[current] = [s + offset for s in _seconds(*FULL)]
        current += timedelta(days=1)
    estimate = periods.estimate_periods(days, START, END, NY)
    assert [(p.start, p.offset) for p in estimate.periods] == [
        (date(2025, 2, 3), 5 * 3600), (date(2025, 3, 10), 4 * 3600), (date(2025, 11, 3), 5 * 3600)]
    assert all(p.follows_dst for p in estimate.periods)
    assert estimate.from_zone == "UTC"


def test_the_old_minus_five_fix_leaves_summer_an_hour_early_and_suggests_a_fixed_zone():
    days = {}
    current = date(2025, 1, 6)
    while current < date(2025, 12, 20):
        if current.weekday() < 5:
            offset = -periods.utc_offset_on(current, NY) - 5 * 3600
            days[current] = [s + offset for s in _seconds(*FULL)]
        current += timedelta(days=1)
    estimate = periods.estimate_periods(days, START, END, NY)
    [summer] = estimate.periods
    assert (summer.start, summer.end, summer.offset) == (date(2025, 3, 10), date(2025, 10, 31), -3600)
    assert summer.follows_dst and estimate.from_zone == "Etc/GMT+5"
    assert periods.fixed_zone_name(-5 * 3600) == "Etc/GMT+5"


def test_a_day_no_single_shift_fits_is_irregular_and_splits_runs():
    days = {_day(0): _seconds("08:00:00", "17:00:00"), _day(1): _seconds(*FULL)}
    estimate = periods.estimate_periods(days, START, END, NY)
    assert [fit.day for fit in estimate.irregular] == [_day(0)]
    assert estimate.periods == []



def test_a_wide_fit_takes_the_shift_that_puts_the_times_where_the_right_dates_sit():
    # one post a day: the right dates at 10:xx, the late ones at 19:xx, which fits +4..+9 h;
    # where the unshifted dates' posts sit (10:xx) says +9 h, not the smallest fit
    days = {_day(i): _seconds(f"{19 if 3 <= i < 6 else 10}:{i:02d}:00") for i in range(9)}
    [period] = periods.estimate_periods(days, START, END, NY).periods
    assert (period.lo, period.hi, period.offset) == (4 * 3600, 9 * 3600, 9 * 3600)
    assert period.adjust_line() == f"--adjust {_day(3)}:{_day(5)}:-9"


def test_content_matches_only_unclaimed_rows_of_the_same_size_and_digest(tmp_path):
    folder = tmp_path / "f"
    posted = datetime(2025, 3, 10, 14, 0, tzinfo=UTC)
    names = [n("2025-03-10T10:00:00", "own.png"), n("2025-03-10T10:05:00", "twin.png"),
             n("2025-03-10T10:07:00", "sized.png"), n("2025-03-10T10:09:00", "damaged.png")]
    fill(folder, names[:1] + names[2:])
    (folder / names[1]).write_bytes((folder / names[0]).read_bytes())   # own.png's bytes again
    data = {name: (folder / name).read_bytes() for name in names}
    own = [_row("1/attachment/0", posted, names[0], data[names[0]])]     # claimed by own.png's name
    wrong_size = _row("2/attachment/0", posted, "x.png", data[names[2]], size=len(data[names[2]]) + 1)
    damaged = _row("3/attachment/0", posted, "y.png", data[names[3]])._replace(sha256="not a digest")
    spaced = _row("4/attachment/0", posted, "z.png", data[names[3]])
    spaced = spaced._replace(sha256=" ".join(spaced.sha256[i:i + 2] for i in range(0, 64, 2)))
    matches = truth.match_messages(naming.list_images(folder).images, own, [wrong_size, damaged, spaced], NY)
    assert set(matches.known) == {names[0]} and matches.known[names[0]].via == truth.BY_NAME
    later = _row("2/attachment/0", posted + timedelta(minutes=7), "x.png", data[names[2]])
    matches = truth.match_messages(naming.list_images(folder).images, own, [wrong_size, later], NY)
    assert matches.known[names[2]] == (later.message_id, posted + timedelta(minutes=7), truth.BY_CONTENT)
