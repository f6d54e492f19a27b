"""The rename engine (discordpicextract.renames): plans, chains and cycles, collisions, journal,
undo, interrupted-batch recovery and the download archive, on real images."""
import json
import os
import sys
from datetime import datetime, timedelta

import pytest
from fault_helpers import lock_held_elsewhere
from helpers import contents, fill, n, write_image

import config
from discordpicextract import naming
from discordpicextract.archive import DownloadArchive, archive_path
from discordpicextract.errors import BusyError
from discordpicextract.renames.apply import apply_plan
from discordpicextract.renames.journal import pending_batch, read_journal
from discordpicextract.renames.plan import TEMP_PREFIX, Move, plan_folder, plan_mapping, plan_renames
from discordpicextract.renames.recovery import locate, recover, undo_last
from discordpicextract.renames.values import format_hours, parse_date, parse_hours, shift_by


def plus(hours):
    return shift_by(parse_hours(hours))


def test_chain_shift_renames_every_file_and_loses_nothing(tmp_path):
    names = [n("2025-03-10T10:00:00"), n("2025-03-10T11:00:00"), n("2025-03-10T12:00:00")]
    folder = fill(tmp_path / "f", names)
    before = contents(folder)
    plan = plan_folder(folder, plus("1"))
    assert [s.src for s in plan.steps] == names[::-1]  # free end of the chain first
    result = apply_plan(folder, plan)
    after = contents(folder)
    assert sorted(after.values()) == sorted(before.values())
    for old in names:
        new = naming.format_name(naming.parse_name(old).timestamp + timedelta(hours=1), "chart.png")
        assert after[new] == before[old]
    assert len(result.done) == 3 and not result.skipped


def test_any_mix_of_chains_cycles_and_lone_moves_is_ordered_so_no_step_overwrites():
    """Random mappings over a pool of names (lone moves, chains into free
    names, swaps and longer cycles, blocked targets): replayed on a set of
    names, every step takes an existing name to a free one, and the end
    state is the mapping's."""
    import random

    seen = {"cycle": 0, "chain": 0}
    for seed in range(8):
        rng = random.Random(seed)
        pool = [f"n{k}.png" for k in range(300)]
        rng.shuffle(pool)
        present = set(pool[:220]) | {f"{TEMP_PREFIX}x-0"}   # a temp name taken: the next one is used
        sources = rng.sample(sorted(present - {f"{TEMP_PREFIX}x-0"}), 150)
        free = [name for name in pool if name not in present]
        mapping = {}
        for old in sources:   # a target: a free name, or one of the sources (chains and cycles)
            choices = [name for name in free + sources if name not in mapping.values() and name != old]
            mapping[old] = rng.choice(choices)
        plan = plan_mapping(mapping, present, "x")
        names = set(present)
        for src, dst, _move, _inode in plan.steps:
            assert src in names and dst not in names, (src, dst)
            names.remove(src)
            names.add(dst)
        moved = {move.old: move.new for move in plan.moves}
        assert moved.keys() | {skip.name for skip in plan.skipped} == mapping.keys()
        assert all(mapping[old] == new for old, new in moved.items())
        assert names == (present - moved.keys()) | set(moved.values())
        for src, dst, move, _inode in plan.steps:   # a step's names are its move's, or a temp name
            old, new = plan.moves[move]
            assert (src == old or src.startswith(TEMP_PREFIX)) and (dst == new or dst.startswith(TEMP_PREFIX))
        assert len({s.move for s in plan.steps}) == len(plan.moves)
        seen["cycle"] += sum(s.dst.startswith(TEMP_PREFIX) for s in plan.steps)
        seen["chain"] += sum(s.src in moved.values() and not s.src.startswith(TEMP_PREFIX) for s in plan.steps)
    assert seen["cycle"] and seen["chain"]   # the mix held both


def test_swap_and_three_cycle_go_through_temporary_names(tmp_path):
    a, b, c, d, e = (n(f"2025-01-0{i}T10:00:00") for i in range(1, 6))
    folder = fill(tmp_path / "f", [a, b, c, d, e])
    before = contents(folder)
    plan = plan_mapping({a: b, b: a, c: d, d: e, e: c}, set(os.listdir(folder)))
    assert sum(step.dst.startswith(TEMP_PREFIX) for step in plan.steps) == 2
    result = apply_plan(folder, plan)
    after = contents(folder)
    assert (after[b], after[a]) == (before[a], before[b])
    assert (after[d], after[e], after[c]) == (before[c], before[d], before[e])
    assert len(result.done) == 5
    assert not [p for p in os.listdir(folder) if p.startswith(TEMP_PREFIX)]


def test_target_held_outside_the_batch_is_skipped_along_the_chain(tmp_path):
    # x shifts onto y's name, y onto an outsider's name: y stays, so x stays too
    x, y = n("2025-01-02T10:00:00", "x.png"), n("2025-01-02T11:00:00", "x.png")
    outsider = n("2025-01-02T12:00:00", "x.png")
    folder = fill(tmp_path / "f", [x, y, outsider])
    before = contents(folder)
    plan = plan_mapping({x: y, y: outsider}, set(os.listdir(folder)))
    assert not plan.moves
    assert {s.name for s in plan.skipped} == {x, y}
    assert any("outside the batch" in s.reason for s in plan.skipped)
    assert any("own rename was skipped" in s.reason for s in plan.skipped)
    apply_plan(folder, plan)
    assert contents(folder) == before


def test_two_files_never_collapse_into_one_name(tmp_path):
    a, b = n("2025-01-02T10:00:00", "a.png"), n("2025-01-02T11:00:00", "b.png")
    target = n("2025-01-02T12:00:00", "c.png")
    folder = fill(tmp_path / "f", [a, b])
    before = contents(folder)
    plan = plan_mapping({a: target, b: target}, set(os.listdir(folder)))
    assert not plan.moves and len(plan.skipped) == 2
    assert all("same name" in s.reason for s in plan.skipped)
    apply_plan(folder, plan)
    assert contents(folder) == before


def test_hidden_and_non_image_names_block_targets(tmp_path):
    name = n("2025-01-02T10:00:00", "a.png")
    folder = fill(tmp_path / "f", [name])
    blocker = folder / n("2025-01-02T11:00:00", "a.png")
    blocker.mkdir()  # a directory with the target name, not listed as an image
    plan = plan_folder(folder, plus("1"))
    assert not plan.moves and plan.skipped[0].name == name


@pytest.mark.parametrize("old, hours, new", [
    ("2025-03-10T21:30:00", "5", "2025-03-11T02:30:00"),    # midnight forward
    ("2025-03-10T02:00:00", "-5", "2025-03-09T21:00:00"),   # midnight backward
    ("2025-02-28T23:30:00", "1", "2025-03-01T00:30:00"),    # month end
    ("2024-02-28T23:00:00", "1", "2024-02-29T00:00:00"),    # leap day
    ("2025-03-01T01:00:00", "-2", "2025-02-28T23:00:00"),   # month start backward
    ("2025-12-31T23:00:00", "2", "2026-01-01T01:00:00"),    # year end
    ("2026-01-01T03:00:00", "-5", "2025-12-31T22:00:00"),   # year start backward
    ("2025-06-01T10:00:00", "1.5", "2025-06-01T11:30:00"),  # fractional hours
])
def test_rollover(tmp_path, old, hours, new):
    folder = fill(tmp_path / "f", [n(old)])
    before = contents(folder)
    result = apply_plan(folder, plan_folder(folder, plus(hours)))
    assert result.done == [Move(n(old), n(new))]
    assert contents(folder) == {n(new): before[n(old)]}


def test_out_of_range_time_and_unparsed_names_are_reported_and_left_alone(tmp_path):
    edge, bad = n("9999-12-31T23:00:00"), "not-a-timestamp.png"
    folder = fill(tmp_path / "f", [edge, bad])
    before = contents(folder)
    plan = plan_folder(folder, plus("2"))
    assert plan.unparsed == [bad]
    assert plan.skipped[0].name == edge and "out of range" in plan.skipped[0].reason
    apply_plan(folder, plan)
    assert contents(folder) == before


def test_bad_hours_and_dates_are_refused():
    for text in ("abc", "nan", "inf", "0", "1e9", "0.0001", ""):
        with pytest.raises(ValueError):
            parse_hours(text)
    for text in ("2025-02-30", "2025-1-1", "yesterday", "2025-13-01"):
        with pytest.raises(ValueError):
            parse_date(text)
    assert format_hours(parse_hours("-5")) == "-5"
    assert format_hours(parse_hours("2.50")) == "2.5"


def test_journal_is_written_before_any_file_moves(tmp_path):
    names = [n("2025-01-02T10:00:00"), n("2025-01-02T11:00:00")]
    folder = fill(tmp_path / "f", names)
    before = contents(folder)
    plan = plan_folder(folder, plus("1"))
    result = apply_plan(folder, plan, label="test", stop_after=0)
    assert result.interrupted and contents(folder) == before
    records = [json.loads(line) for line in (folder / config.JOURNAL_FILE).read_text().splitlines()]
    assert records[0]["event"] == "begin"
    assert records[0]["moves"] == [[m.old, m.new] for m in plan.moves]
    assert len(records[0]["steps"]) == len(plan.steps)
    assert pending_batch(folder).id == plan.batch_id


def test_target_appearing_after_planning_is_skipped_not_overwritten(tmp_path):
    name, target = n("2025-01-02T10:00:00"), n("2025-01-02T11:00:00")
    folder = fill(tmp_path / "f", [name])
    plan = plan_folder(folder, plus("1"))
    write_image(folder / target, seed=99, size=(40, 30))
    before = contents(folder)
    result = apply_plan(folder, plan)
    assert not result.done and "appeared meanwhile" in result.skipped[0].reason
    assert contents(folder) == before
    assert pending_batch(folder) is None
    # the failed move is not undone later: the batch renamed nothing
    assert undo_last(folder).batch is None


def test_undo_restores_every_name_then_walks_back_further(tmp_path):
    names = [n("2025-01-02T10:00:00"), n("2025-01-02T15:00:00"), n("2025-01-02T20:00:00"), n("2025-12-31T22:00:00")]
    folder = fill(tmp_path / "f", names)
    original = contents(folder)
    apply_plan(folder, plan_folder(folder, plus("5")))
    after_first = contents(folder)
    apply_plan(folder, plan_folder(folder, plus("-2.5")))
    assert contents(folder) != after_first
    undo_last(folder)
    assert contents(folder) == after_first
    undo_last(folder)
    assert contents(folder) == original
    assert undo_last(folder).batch is None  # nothing left to undo


def test_dry_run_undo_changes_nothing(tmp_path):
    folder = fill(tmp_path / "f", [n("2025-01-02T10:00:00")])
    apply_plan(folder, plan_folder(folder, plus("1")))
    journal = (folder / config.JOURNAL_FILE).read_text()
    before = contents(folder)
    outcome = undo_last(folder, dry_run=True)
    assert outcome.plan.moves and outcome.result is None
    assert contents(folder) == before and (folder / config.JOURNAL_FILE).read_text() == journal


def _interrupted(tmp_path, stop_after, drop_progress=False):
    """A batch with a chain and a swap, stopped after `stop_after` steps."""
    chain = [n("2025-01-02T10:00:00", "c.png"), n("2025-01-02T11:00:00", "c.png"), n("2025-01-02T12:00:00", "c.png")]
    a, b = n("2025-01-05T10:00:00", "s.png"), n("2025-01-06T10:00:00", "s.png")
    folder = fill(tmp_path / "f", [*chain, a, b])
    original = contents(folder)
    mapping = {chain[0]: chain[1], chain[1]: chain[2], chain[2]: n("2025-01-02T13:00:00", "c.png"), a: b, b: a}
    plan = plan_mapping(mapping, set(os.listdir(folder)))
    apply_plan(folder, plan, stop_after=stop_after)
    if drop_progress:  # a crash can lose progress lines: recovery must not need them
        journal = folder / config.JOURNAL_FILE
        lines = [line for line in journal.read_text().splitlines() if '"event":"step"' not in line]
        journal.write_text("\n".join(lines) + "\n")
    expected = {mapping.get(name, name): sha for name, sha in original.items()}
    return folder, original, expected


@pytest.mark.parametrize("stop_after", [1, 3, 4])
@pytest.mark.parametrize("drop_progress", [False, True])
def test_recover_complete_finishes_an_interrupted_batch(tmp_path, stop_after, drop_progress):
    folder, original, expected = _interrupted(tmp_path, stop_after, drop_progress)
    assert pending_batch(folder) is not None
    outcome = recover(folder, "complete")
    assert not outcome.result.skipped
    assert contents(folder) == expected
    assert pending_batch(folder) is None
    undo_last(folder)  # the completed batch is undoable like any other
    assert contents(folder) == original


@pytest.mark.parametrize("stop_after", [1, 3, 4])
def test_recover_revert_puts_every_name_back(tmp_path, stop_after):
    folder, original, _expected = _interrupted(tmp_path, stop_after, drop_progress=True)
    if stop_after == 4:  # mid-swap: one file sits under a hidden temporary name
        assert any(p.startswith(TEMP_PREFIX) for p in os.listdir(folder))
    recover(folder, "revert")
    assert contents(folder) == original
    assert not any(p.startswith(TEMP_PREFIX) for p in os.listdir(folder))
    assert pending_batch(folder) is None


def _revert_that_crashes(folder):
    """Start reverting the pending batch of `folder` by hand, as --recover
    revert does, and crash after the first step: (the batch, the revert's plan)."""
    batch = pending_batch(folder)
    positions = locate(folder, batch)
    mapping = {now: batch.moves[m].old for m, now in positions.items() if now != batch.moves[m].old}
    plan = plan_mapping(mapping, set(os.listdir(folder)))
    apply_plan(folder, plan, recovers=batch.id, stop_after=1)
    return batch, plan


@pytest.mark.parametrize("mode", ["revert", "complete"])
def test_a_killed_revert_is_recovered_to_the_state_asked_for_the_first_batch(tmp_path, mode):
    """--recover names what to do with the batch the crash left, whatever a
    killed recovery of it was doing: revert twice reverts (never undoes the
    revert); complete after a killed revert completes."""
    folder, original, expected = _interrupted(tmp_path, 3)
    batch, _plan = _revert_that_crashes(folder)
    assert pending_batch(folder).id == batch.id
    recover(folder, mode)
    assert contents(folder) == (original if mode == "revert" else expected)
    assert pending_batch(folder) is None
    again = recover(folder, mode)  # idempotent: nothing left to do
    assert again.batch is None and contents(folder) == (original if mode == "revert" else expected)


def test_download_archive_follows_renames_and_undo(tmp_path):
    old = n("2025-01-02T10:00:00")
    nxt = n("2025-01-02T11:00:00")
    folder = fill(tmp_path / "f", [old, nxt])
    with DownloadArchive(folder) as archive:
        archive.add("m1:a1", 1, old, 10, "x")
        archive.add("m2:a2", 2, nxt, 10, "y")
    apply_plan(folder, plan_folder(folder, plus("1")))
    with DownloadArchive(folder) as archive:
        assert archive.filename_of("m1:a1") == nxt
        assert archive.filename_of("m2:a2") == n("2025-01-02T12:00:00")
    undo_last(folder)
    with DownloadArchive(folder) as archive:
        assert archive.filename_of("m1:a1") == old
        assert archive.filename_of("m2:a2") == nxt


def test_archive_not_double_renamed_when_reverting_before_its_update(tmp_path):
    old, nxt = n("2025-01-02T10:00:00"), n("2025-01-02T11:00:00")
    folder = fill(tmp_path / "f", [old, nxt])
    with DownloadArchive(folder) as archive:
        archive.add("k1", 1, old, 10, "x")
        archive.add("k2", 2, nxt, 10, "y")
    plan = plan_folder(folder, plus("1"))
    apply_plan(folder, plan, stop_after=1)
    recover(folder, "revert")
    with DownloadArchive(folder) as archive:
        assert (archive.filename_of("k1"), archive.filename_of("k2")) == (old, nxt)


def test_plan_is_linear_for_long_chains():
    # 50,000 files each shifting onto the next one's name: one long chain
    names = [naming.format_name(datetime(2025, 1, 1) + timedelta(hours=i), "c.png") for i in range(50_000)]
    plan = plan_renames(names, plus("1"))
    assert len(plan.steps) == 50_000 and not plan.skipped
    assert plan.steps[0].src == names[-1]


@pytest.mark.parametrize("mode", ["complete", "revert"])
def test_batch_interrupted_before_its_first_move_can_be_recovered(tmp_path, mode):
    folder, original, expected = _interrupted(tmp_path, 0)
    assert contents(folder) == original
    recover(folder, mode)
    assert contents(folder) == (expected if mode == "complete" else original)
    assert pending_batch(folder) is None


def test_two_runs_never_interleave_in_one_folder(tmp_path):
    folder = fill(tmp_path / "f", [n("2025-01-02T10:00:00")])
    before = contents(folder)
    plan = plan_folder(folder, plus("1"))
    with lock_held_elsewhere(folder) as (pid,), \
            pytest.raises(BusyError, match=f"another run is using .* \\(pid {pid}, -c: holder.py"):
        apply_plan(folder, plan)
    assert contents(folder) == before
    apply_plan(folder, plan)  # the lock went with the other run
    assert set(contents(folder)) == {n("2025-01-02T11:00:00")}


def test_a_torn_journal_line_does_not_swallow_the_next_batch(tmp_path):
    folder = fill(tmp_path / "f", [n("2025-01-02T10:00:00")])
    original = contents(folder)
    with open(folder / config.JOURNAL_FILE, "w", encoding="utf-8") as journal:
        journal.write('{"event":"begin","batch":"crashed-while-writ')  # no newline: a crash
    apply_plan(folder, plan_folder(folder, plus("1")))
    assert undo_last(folder).result.done  # the batch is in the journal
    assert contents(folder) == original


@pytest.mark.parametrize("damage", [
    b'{"event":"begin","batch":"x"}\n',           # valid JSON, fields missing
    b'["not", "a", "record"]\n',
    b'\xff\xfe not utf-8\n',
])
def test_damaged_journal_lines_are_skipped_not_a_traceback(tmp_path, damage):
    folder = fill(tmp_path / "f", [n("2025-01-02T10:00:00")])
    original = contents(folder)
    (folder / config.JOURNAL_FILE).write_bytes(damage)
    assert pending_batch(folder) is None
    apply_plan(folder, plan_folder(folder, plus("1")))
    undo_last(folder)
    assert contents(folder) == original


def test_unwritable_journal_is_a_usage_error_before_any_move(tmp_path):
    import adjust_timestamps

    folder = fill(tmp_path / "f", [n("2025-01-02T10:00:00")])
    before = contents(folder)
    (folder / config.JOURNAL_FILE).mkdir()  # cannot be opened as a file
    assert adjust_timestamps.main(["--folders", str(folder), "--hours", "1"]) == 2
    assert adjust_timestamps.main(["--folders", str(folder), "--undo"]) == 2
    assert contents(folder) == before


def _no_file_under_two_names(folder):
    inodes = [os.lstat(folder / name).st_ino for name in os.listdir(folder) if not name.startswith(".d")]
    return len(inodes) == len(set(inodes))


@pytest.mark.parametrize("mode", ["complete", "revert"])
def test_ctrl_c_between_link_and_unlink_leaves_no_file_under_two_names(tmp_path, monkeypatch, mode):
    from discordpicextract import fileops

    folder, original, expected = _interrupted(tmp_path, 0)
    journal = folder / config.JOURNAL_FILE
    journal.unlink()  # start over with a real run that Ctrl-C stops
    real_unlink, calls = os.unlink, []

    def unlink(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:  # the second step: its link is made, its unlink not yet
            raise KeyboardInterrupt
        return real_unlink(path, *args, **kwargs)

    plan = plan_mapping(_mapping(original, expected), set(os.listdir(folder)))
    monkeypatch.setattr(fileops, "_RENAME_NOREPLACE", None)  # the link + unlink fallback
    monkeypatch.setattr(fileops.os, "unlink", unlink)
    with pytest.raises(KeyboardInterrupt):
        apply_plan(folder, plan)
    monkeypatch.setattr(fileops.os, "unlink", real_unlink)
    assert _no_file_under_two_names(folder)
    outcome = recover(folder, mode)
    assert not outcome.result.skipped
    assert contents(folder) == (expected if mode == "complete" else original)


@pytest.mark.parametrize("mode", ["complete", "revert"])
@pytest.mark.parametrize("stop_after", [0, 2, 3])
def test_crash_between_link_and_unlink_is_recovered(tmp_path, mode, stop_after):
    folder, original, expected = _interrupted(tmp_path, stop_after, drop_progress=True)
    src, dst, _move, _inode = pending_batch(folder).steps[stop_after]
    os.link(folder / src, folder / dst)  # the crash: the next step's link made, its unlink not
    recover(folder, mode)
    assert contents(folder) == (expected if mode == "complete" else original)
    assert _no_file_under_two_names(folder)


def _mapping(original, expected):
    """{old: new} from the two {name: sha} maps of _interrupted."""
    by_sha = {sha: name for name, sha in expected.items()}
    return {name: by_sha[sha] for name, sha in original.items() if by_sha[sha] != name}


def test_a_batch_that_renamed_nothing_does_not_hold_back_undo(tmp_path):
    name = n("2025-01-02T10:00:00")
    folder = fill(tmp_path / "f", [name])
    original = contents(folder)
    apply_plan(folder, plan_folder(folder, plus("1")))
    plan = plan_folder(folder, plus("1"))
    write_image(folder / n("2025-01-02T12:00:00"), seed=50, size=(40, 30))  # its only move fails
    assert not apply_plan(folder, plan).done
    (folder / n("2025-01-02T12:00:00")).unlink()
    undo_last(folder)
    assert contents(folder) == original


def test_files_an_undo_could_not_revert_are_retried_before_going_further_back(tmp_path):
    names = [n("2025-01-02T10:00:00"), n("2025-01-02T15:00:00")]
    folder = fill(tmp_path / "f", names)
    original = contents(folder)
    apply_plan(folder, plan_folder(folder, plus("1")))
    after_first = contents(folder)
    apply_plan(folder, plan_folder(folder, plus("2")))
    blocker = folder / n("2025-01-02T16:00:00")  # where the second batch's undo puts one file back
    blocker.mkdir()
    first_try = undo_last(folder)
    assert len(first_try.result.done) == 1 and len(first_try.result.skipped) == 1
    blocker.rmdir()
    retry = undo_last(folder)
    assert retry.batch.id == first_try.batch.id and len(retry.result.done) == 1
    assert contents(folder) == after_first
    undo_last(folder)
    assert contents(folder) == original


def test_a_damaged_download_archive_stops_the_run_before_any_rename(tmp_path, capsys):
    import adjust_timestamps

    folder = fill(tmp_path / "f", [n("2025-01-02T10:00:00")])
    before = contents(folder)
    archive_path(folder).write_bytes(b"not a database at all")
    assert adjust_timestamps.main(["--folders", str(folder), "--hours", "1"]) == 2
    assert "is not an SQLite database" in capsys.readouterr().err
    assert contents(folder) == before and pending_batch(folder) is None


def test_an_archive_that_fails_after_the_renames_is_a_warning_and_the_batch_closes(tmp_path, capsys):
    import sqlite3

    folder = fill(tmp_path / "f", [n("2025-01-02T10:00:00")])
    before = contents(folder)
    with sqlite3.connect(archive_path(folder)) as db:  # SQLite, but unusable as an archive
        db.execute("CREATE TABLE t(filename TEXT)")
        db.execute("CREATE VIEW downloads AS SELECT filename FROM t")
    result = apply_plan(folder, plan_folder(folder, plus("1")))
    assert len(result.done) == 1 and "download archive still lists the old names" in result.warnings[0]
    assert capsys.readouterr().err == ""  # the library reports; only the scripts print
    assert pending_batch(folder) is None
    undo_last(folder)
    assert contents(folder) == before


def test_the_scripts_print_the_archive_warning_and_the_renames_stand(tmp_path, capsys):
    import sqlite3

    import adjust_timestamps

    folder = fill(tmp_path / "f", [n("2025-01-02T10:00:00")])
    with sqlite3.connect(archive_path(folder)) as db:
        db.execute("CREATE TABLE t(filename TEXT)")
        db.execute("CREATE VIEW downloads AS SELECT filename FROM t")
    assert adjust_timestamps.main(["--folders", str(folder), "--hours", "1"]) == 0
    assert "warning: " in capsys.readouterr().err and list(contents(folder)) == [n("2025-01-02T11:00:00")]
    assert adjust_timestamps.main(["--folders", str(folder), "--undo"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: ") and "download archive still lists the old names of 1" in err
    assert list(contents(folder)) == [n("2025-01-02T10:00:00")]


def test_moves_that_failed_while_completing_a_batch_are_not_undone(tmp_path):
    folder, original, expected = _interrupted(tmp_path, 1, drop_progress=True)
    batch = pending_batch(folder)
    src, dst, _move, _inode = batch.steps[1]
    outsider = folder / n("2025-01-09T10:00:00", "outsider.png")
    os.rename(folder / src, outsider)  # a file of the batch moved away by hand meanwhile
    recover(folder, "complete")
    failed = [m for m in read_journal(folder)[0].moves if m not in
              read_journal(folder)[0].done_moves()]
    assert failed == [Move(src, dst)]
    os.rename(outsider, folder / dst)  # an unrelated file now sits at the failed move's target
    before_undo = contents(folder)
    undo_last(folder)
    after = contents(folder)
    assert after[dst] == before_undo[dst]  # not "reverted" to the failed move's old name


def test_names_that_are_not_utf8_are_journaled_and_undone(tmp_path):
    if os.name != "posix" or sys.platform == "darwin":
        pytest.skip("needs a file system that takes any bytes in names")
    folder = fill(tmp_path / "f", [])
    raw = os.fsencode(folder) + b"/2025-01-02_10-00-00_\xff.png"
    with open(raw, "wb") as handle:
        handle.write(b"chart")
    result = apply_plan(folder, plan_folder(folder, plus("1")))
    assert len(result.done) == 1

    def visible():
        return [name for name in os.listdir(os.fsencode(folder)) if not name.startswith(b".")]

    assert visible() == [b"2025-01-02_11-00-00_\xff.png"]
    undo_last(folder)
    assert visible() == [b"2025-01-02_10-00-00_\xff.png"]


def test_a_journal_is_read_once_per_run_and_a_batch_handed_out_never_changes(tmp_path):
    from discordpicextract.renames import journal as journal_module

    folder = fill(tmp_path / "f", [n("2025-01-02T10:00:00"), n("2025-01-03T10:00:00")])
    first = plan_mapping({n("2025-01-02T10:00:00"): n("2025-01-02T11:00:00")}, set(os.listdir(folder)))
    apply_plan(folder, first, stop_after=0)           # begun, not finished
    [pending] = read_journal(folder)
    assert pending.status is None
    assert recover(folder, "complete").result is not None
    batches = read_journal(folder)                      # only the appended lines were parsed
    assert [b.status for b in batches if b.id == pending.id] == ["completed"]
    assert pending.status is None
    parsed = journal_module._PARSED[os.path.realpath(folder / config.JOURNAL_FILE)]
    assert parsed.offset == (folder / config.JOURNAL_FILE).stat().st_size


def test_finished_history_is_rotated_and_undo_reads_back_only_as_far_as_it_needs(tmp_path, monkeypatch):
    """A big journal whose batches are all finished becomes a history file;
    --undo still reverts batch after batch, reading back into history."""
    import adjust_timestamps
    from discordpicextract.renames import journal as journal_module

    monkeypatch.setattr(journal_module, "ROTATE_AT", 1)
    folder = fill(tmp_path / "f", [n("2025-01-02T10:00:00"), n("2025-01-03T10:00:00", "b.png")])
    start = contents(folder)
    assert adjust_timestamps.main(["--folders", str(folder), "--hours", "-1", "--yes"]) == 0
    after_first = contents(folder)
    assert adjust_timestamps.main(["--folders", str(folder), "--hours", "-2", "--yes"]) == 0
    history = journal_module.history_files(folder)
    assert [p.name for p in history] == [".discordpicextract-renames.000002.jsonl",
                                         ".discordpicextract-renames.000001.jsonl"]
    assert not (folder / config.JOURNAL_FILE).exists()      # nothing pending: nothing left to read
    assert pending_batch(folder) is None

    assert adjust_timestamps.main(["--folders", str(folder), "--undo"]) == 0
    assert contents(folder) == after_first
    assert adjust_timestamps.main(["--folders", str(folder), "--undo"]) == 0   # back into older history
    assert contents(folder) == start
    assert adjust_timestamps.main(["--folders", str(folder), "--undo"]) == 0
    assert contents(folder) == start                         # nothing further back


def test_history_files_are_numbered_from_what_the_folder_holds_at_each_run(tmp_path, monkeypatch):
    """A run lists its folder's history files once under its lock (and
    adds the ones it rotates); the next run lists them again, so a history
    file put there (or taken away) between runs is seen."""
    import adjust_timestamps
    from discordpicextract.renames import journal as journal_module

    monkeypatch.setattr(journal_module, "ROTATE_AT", 1)
    folder = fill(tmp_path / "f", [n("2025-01-02T10:00:00"), n("2025-01-03T10:00:00", "b.png")])
    start = contents(folder)
    assert adjust_timestamps.main(["--folders", str(folder), "--hours", "-1", "--yes"]) == 0
    kept = (folder / ".discordpicextract-renames.000001.jsonl").read_bytes()
    (folder / ".discordpicextract-renames.000007.jsonl").write_bytes(kept)   # another history, between runs
    (folder / ".discordpicextract-renames.000001.jsonl").unlink()
    assert adjust_timestamps.main(["--folders", str(folder), "--hours", "-2", "--yes"]) == 0
    assert [p.name for p in journal_module.history_files(folder)] == [".discordpicextract-renames.000008.jsonl",
                                                                      ".discordpicextract-renames.000007.jsonl"]
    assert adjust_timestamps.main(["--folders", str(folder), "--undo"]) == 0    # reads 8, rotates its undo to 9
    assert adjust_timestamps.main(["--folders", str(folder), "--undo"]) == 0    # reads 9, 8, then 7
    assert contents(folder) == start
    assert [p.name for p in journal_module.history_files(folder)][:2] == [".discordpicextract-renames.000010.jsonl",
                                                                          ".discordpicextract-renames.000009.jsonl"]


def test_two_rotations_under_one_hold_make_two_history_files(tmp_path, monkeypatch):
    from discordpicextract import locking
    from discordpicextract.renames import journal as journal_module

    monkeypatch.setattr(journal_module, "ROTATE_AT", 1)
    folder = fill(tmp_path / "f", [n("2025-01-02T10:00:00")])
    with locking.hold(folder, "test"):
        assert apply_plan(folder, plan_folder(folder, plus("1")), label="1").done   # rotated: 000001
        finished = (folder / ".discordpicextract-renames.000001.jsonl").read_bytes()
        (folder / config.JOURNAL_FILE).write_bytes(finished)     # another finished journal, same hold
        journal_module._PARSED.clear()
        assert journal_module.rotate_if_finished(folder).name == ".discordpicextract-renames.000002.jsonl"
    assert [p.name for p in journal_module.history_files(folder)] == [".discordpicextract-renames.000002.jsonl",
                                                                      ".discordpicextract-renames.000001.jsonl"]


def test_an_unfinished_batch_is_never_rotated_away(tmp_path, monkeypatch):
    from discordpicextract.renames import journal as journal_module

    monkeypatch.setattr(journal_module, "ROTATE_AT", 1)
    folder = fill(tmp_path / "f", [n("2025-01-02T10:00:00"), n("2025-01-03T10:00:00")])
    plan = plan_mapping({n("2025-01-02T10:00:00"): n("2025-01-02T11:00:00")}, set(os.listdir(folder)))
    apply_plan(folder, plan, stop_after=0)
    assert journal_module.rotate_if_finished(folder) is None
    assert pending_batch(folder) is not None and journal_module.history_files(folder) == []


def test_what_a_run_writes_to_its_journal_it_knows_without_reading_it_back(tmp_path, monkeypatch):
    """The begin record is written in pieces and goes straight into the
    parsed copy: that copy is exactly what reading the file afresh gives,
    and the run parsed none of its own lines (a batch of 100,000 moves)."""
    from discordpicextract.renames import journal as journal_module

    folder = fill(tmp_path / "f", [n(f"2025-01-02T{h:02d}:00:00", f"c{h}.png") for h in range(8, 14)])
    monkeypatch.setattr(journal_module, "_PIECE", 2)             # several pieces, as a big batch has
    plan = plan_mapping({n("2025-01-02T08:00:00", "c8.png"): n("2025-01-02T09:00:00", "c9.png"),
                         n("2025-01-02T09:00:00", "c9.png"): n("2025-01-02T08:00:00", "c8.png"),   # a swap
                         n("2025-01-02T10:00:00", "c10.png"): n("2025-01-02T15:00:00", "c10.png")},
                        set(os.listdir(folder)))
    read_journal(folder)                                          # this run has read its journal (empty)
    parsed_lines = []
    real = journal_module._apply_record
    monkeypatch.setattr(journal_module, "_apply_record", lambda b, r: (parsed_lines.append(r), real(b, r)))
    apply_plan(folder, plan, label="test")
    known = read_journal(folder)
    assert [r["event"] for r in parsed_lines if r["event"] == "begin"] == []   # never parsed back
    journal_module._PARSED.clear()
    fresh = read_journal(folder)
    assert known == fresh and fresh[0].status == "completed" and len(fresh[0].steps) == 4
    lines = (folder / config.JOURNAL_FILE).read_bytes().splitlines()
    record = json.loads(lines[0])
    assert record["format"] == 2 and record["moves"] == [list(move) for move in plan.moves]
    assert [list(s[:3]) for s in fresh[0].steps] == [list(s[:3]) for s in plan.steps]
    # a step is its move's index, its names written out only where they are not its move's (the temp name)
    assert [s if type(s) is int else s[2] for s in record["steps"]] == [s.move for s in plan.steps]
    assert sum(type(s) is list for s in record["steps"]) == 2
    inodes = [os.lstat(folder / move.new).st_ino for move in plan.moves]   # each move's file, now at its new name
    assert record["inodes"] == inodes and [s[3] for s in fresh[0].steps] == [inodes[s.move] for s in plan.steps]
    assert lines[0] == json.dumps(record, separators=(",", ":")).encode()   # one line, as write() makes it


@pytest.mark.parametrize("layout", [{"separators": (",", ":")}, {}])   # as written here / by hand
@pytest.mark.parametrize("bad", [".", "..", "", "a\\b.png", "a\x00b.png", "x/../../y.png", 7])
def test_a_journal_line_with_one_bad_name_among_many_is_damaged_in_either_layout(tmp_path, capsys, layout, bad):
    """The names of a begin record are checked a few thousand at a time:
    one bad name among them, in the moves or in the steps, still makes the
    whole line damaged (moving nothing), whichever way the line is laid out."""
    import adjust_timestamps

    folder = fill(tmp_path / "f", [n(f"2025-01-02T{h:02d}:00:00") for h in range(8, 12)])
    before = contents(folder)
    names = sorted(os.listdir(folder))
    good = [[name, name.replace("2025-01-02", "2025-01-05")] for name in names if not name.startswith(".")]
    for where in ("moves", "steps"):
        moves = [list(pair) for pair in good] + ([[names[0], bad]] if where == "moves" else [])
        steps = [[old, new, k, None] for k, (old, new) in enumerate(good)]
        if where == "steps":
            steps[1][0] = bad
        record = {"event": "begin", "batch": f"b-{where}", "label": "x", "created": "2025", "undoes": None,
                  "recovers": None, "update_archive": True, "folders": [], "moves": moves, "steps": steps}
        end = {"event": "end", "batch": f"b-{where}", "status": "completed"}
        (folder / config.JOURNAL_FILE).write_text(json.dumps(record, **layout) + "\n" + json.dumps(end) + "\n")
        from discordpicextract.renames import journal as journal_module

        journal_module._PARSED.clear()
        assert adjust_timestamps.main(["--folders", str(folder), "--undo"]) == 1
        assert "1 damaged line(s) ignored (line 1)" in capsys.readouterr().err
        assert contents(folder) == before


@pytest.mark.parametrize("damage", ["none", "bad name in a step", "move index out of range", "inode of a wrong type",
                                    "an inode short", "a step of a wrong shape", "unknown format"])
def test_a_damaged_format_2_begin_record_moves_nothing(tmp_path, capsys, damage):
    """A format-2 begin record (an inode per move, steps as move indices)
    is checked as strictly as the first format: any wrong part makes the
    line damaged, and nothing it names is moved (undone when it is whole)."""
    import adjust_timestamps
    from discordpicextract.renames import journal as journal_module

    folder = fill(tmp_path / "f", [n(f"2025-01-02T{h:02d}:00:00") for h in range(8, 12)])
    before = contents(folder)
    names = sorted(name for name in os.listdir(folder) if not name.startswith("."))
    moves = [[name, name.replace("2025-01-02", "2025-01-05")] for name in names]
    inodes = [os.lstat(folder / name).st_ino for name in names]
    for old, new in moves:   # as the batch left them
        os.rename(folder / old, folder / new)
    after = contents(folder)
    steps: list = [0, 1, [moves[2][0], ".dpe-rename-b-0", 2], [".dpe-rename-b-0", moves[2][1], 2], 3]
    head = {"format": 2}
    if damage == "bad name in a step":
        steps[2][1] = "../x.png"
    elif damage == "move index out of range":
        steps[4] = 4
    elif damage == "inode of a wrong type":
        inodes[1] = "12"
    elif damage == "an inode short":
        inodes.pop()
    elif damage == "a step of a wrong shape":
        steps[3] = [".dpe-rename-b-0", 2]
    elif damage == "unknown format":
        head = {"format": 3}
    record = {"event": "begin", "batch": "b", "label": "x", "created": "2025", "undoes": None, "recovers": None,
              "update_archive": True, "folders": [], **head, "inodes": inodes, "moves": moves, "steps": steps}
    end = {"event": "end", "batch": "b", "status": "completed"}
    (folder / config.JOURNAL_FILE).write_text(json.dumps(record, separators=(",", ":")) + "\n" + json.dumps(end)
                                              + "\n")
    journal_module._PARSED.clear()
    if damage == "none":
        assert adjust_timestamps.main(["--folders", str(folder), "--undo"]) == 0
        assert "damaged" not in capsys.readouterr().err and contents(folder) == before
        return
    assert adjust_timestamps.main(["--folders", str(folder), "--undo"]) == 1
    assert "1 damaged line(s) ignored (line 1)" in capsys.readouterr().err
    assert contents(folder) == after


def test_a_begin_record_reads_the_same_in_either_layout(tmp_path):
    from discordpicextract.renames import journal as journal_module

    folder = tmp_path / "f"
    folder.mkdir()
    moves = [["a.png", "b.png"], ["b.png", "c\udcff.png"], ["c\udcff.png", "a.png"]]   # a cycle
    steps = [["a.png", ".dpe-rename-x-0", 0, 11], ["c\udcff.png", "a.png", 2, 13], ["b.png", "c\udcff.png", 1, 12],
             [".dpe-rename-x-0", "b.png", 0, 11]]
    record = {"event": "begin", "batch": "b", "label": "x", "created": "2025", "undoes": None, "recovers": None,
              "update_archive": True, "folders": ["/f"], "moves": moves, "steps": steps}
    read = []
    for layout in ({"separators": (",", ":")}, {}):
        (folder / config.JOURNAL_FILE).write_text(json.dumps(record, **layout) + "\n")
        journal_module._PARSED.clear()
        read.append(read_journal(folder))
    assert read[0] == read[1] and [list(m) for m in read[0][0].moves] == moves
    assert [list(s) for s in read[0][0].steps] == steps and read[0][0].folders == ["/f"]
    assert read[0][0].steps[2][0] is read[0][0].moves[1].old           # one str for a name


@pytest.mark.parametrize("stride", [1, 40, 1 << 16])
def test_a_begin_record_read_in_pieces_is_the_record_json_gives(tmp_path, monkeypatch, stride):
    """A begin record's moves and steps are decoded a piece at a time, cut
    where an element starts: names that hold the cut's own characters
    ("],[" at a name's end, quotes) read back exactly as json.loads reads
    the whole line, wherever the pieces fall."""
    from discordpicextract.renames import journal as journal_module

    monkeypatch.setattr(journal_module, "_STRIDE", stride)
    folder = tmp_path / "f"
    folder.mkdir()
    odd = ['x],[', 'y"],["z', '],["', '"],[', 'q]],[[']
    moves = [[f"{k}{odd[k % len(odd)]}.png", f"n{k}{odd[(k + 1) % len(odd)]}"] for k in range(40)]
    steps = [[old, new, k, 100 + k if k % 3 else None] for k, (old, new) in enumerate(moves)]
    record = {"event": "begin", "batch": "b", "label": "x", "created": "2025", "undoes": None, "recovers": None,
              "update_archive": True, "folders": ["/f"], "moves": moves, "steps": steps}
    (folder / config.JOURNAL_FILE).write_text(json.dumps(record, separators=(",", ":")) + "\n")
    journal_module._PARSED.clear()
    batch, = read_journal(folder)
    assert [list(m) for m in batch.moves] == moves and [list(s) for s in batch.steps] == steps
    assert all(type(m) is Move for m in batch.moves) and batch.steps[5][0] is batch.moves[5].old


def test_the_planner_takes_exactly_the_names_naming_reads_as_images():
    """plan_folder filters a folder's names with one regex (in C): it must
    say what naming.is_image_name says of every name not hidden."""
    from discordpicextract.renames import plan as plan_module

    stems = ["a", "2025-01-02_10-00-00_x", "a.b", "a\nb", "é", "..", "."]
    exts = [".png", ".PNG", ".JpEg", ".jpg", ".gif", ".g\u0131f", ".g\u0130f", ".webp", ".bmp", ".BMP", ".txt",
            ".png.txt", ".pngx", "png", ".jpe", ".\u212apng", ".png\n", ""]
    for stem in stems:
        for ext in exts:
            name = stem + ext
            if name[:1] == ".":
                continue
            assert bool(plan_module._IMAGE_NAME.match(name)) == naming.is_image_name(name), name


@pytest.mark.parametrize("hours", ["-1", "1.5", "-26", "878400", "-878400"])
def test_a_shift_of_every_name_plans_what_the_general_parse_plans(tmp_path, hours):
    """--hours shifts names without parsing each into a TimestampedName:
    the plan must be the one the general way (parse, shift, format) gives,
    for every kind of name: impossible dates, hour 24, other digits, the
    year running out, a name that stays, a newline in the original."""
    names = ["2024-01-02_09-30-06_image.png", "2024-02-29_23-59-59_a.png", "2023-02-29_10-00-00_leap.png",
             "2024-01-02_24-00-00_h24.png", "2024-13-01_10-00-00_m13.png", "2024-01-02_09-30-60_s60.png",
             "\uff12024-01-02_09-30-06_wide.png", "2024-01-0\u0663_09-30-06_arabic.png", "9999-12-31_23-00-00_end.png",
             "0001-01-01_00-00-00_start.png", "1000-01-01_00-30-00_y1000.png", "2024-01-02_09-30-06_x\ny.png",
             "2024-01-02_09-30-06_.png", "2024-01-02_09-30-06.png", "not-a-stamp.png", "2024-06-30_12-00-00_b.jpeg",
             "2024-12-31_23-00-00_ny.png", "2024-01-02_09-60-00_m60.png", "2024-03-01_00-00-00_c.png",
             "2024-03-01_00-30-00_c.png", "2024-03-01_00-30-00_d.png", "2024-02-30_10-00-00_feb30.png",
             "2024-03-01_01-00-00_x.png", "2024-03-01_22-30-00_y.png", "2024-03-01_02-00-00_z.png"]   # to midnight
    folder = tmp_path / "f"
    folder.mkdir()
    for name in names:
        (folder / name).write_bytes(b"x")
    fast = shift_by(parse_hours(hours))
    assert hasattr(fast, "delta")

    def general(parsed):   # the same shift, through the general way
        return fast(parsed)

    one, other = plan_folder(folder, fast, "b"), plan_folder(folder, general, "b")
    assert (one.moves, list(one.steps), one.skipped, one.unparsed, one.unselected) == \
           (other.moves, list(other.steps), other.skipped, other.unparsed, other.unselected)
    assert one.moves or one.skipped
