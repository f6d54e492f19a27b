"""Renames under faults, through the scripts' main(argv): a batch over three
folders killed with kill -9 at chosen points (and its recovery killed too)
is brought to one state in every folder by --recover complete|revert, run
again safely; two runs at once (the second refused, or its stale plan
refused); recovery refused while the batch is live; a journal naming files
outside its folder or holding wrong types moves nothing."""
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta

import pytest
from fault_helpers import ROOT, fill_disk, leftovers, lock_held_elsewhere, small_disk
from helpers import contents, fill

import adjust_timestamps
import config
from discordpicextract import cli, naming
from discordpicextract.renames import command
from discordpicextract.renames.journal import pending_batch

FOLDERS = config.PIPELINE_FOLDERS
SIZES = (12, 8, 5)

# Runs adjust_timestamps.main in a process that kills itself (SIGKILL, no
# clean-up of any kind) at the Nth file move, or at the Nth begin record.
KILLED = """
import os, signal, sys
from discordpicextract.renames import apply, journal
where, n = sys.argv[1], int(sys.argv[2])
calls = [0]
def counting(real, match=lambda *a: True):
    def wrapper(*args, **kwargs):
        if match(*args):
            calls[0] += 1
            if calls[0] == n:
                os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    return wrapper
if where == "move":
    apply._Mover.move = counting(apply._Mover.move)
else:
    journal.Journal.write_begin = counting(journal.Journal.write_begin)
import adjust_timestamps
sys.exit(adjust_timestamps.main(sys.argv[3:]))
"""


def names(count, first=datetime(2025, 3, 3, 9, 0)):
    # an hour apart: a +1 h shift makes one long chain per folder
    return [naming.format_name(first + timedelta(hours=k), f"c{k}.png") for k in range(count)]


def pipeline(tmp_path):
    return [fill(tmp_path / name, names(size)) for name, size in zip(FOLDERS, SIZES)]


def shifted(before, hours):
    out = {}
    for name, digest in before.items():
        parsed = naming.parse_name(name)
        out[naming.format_name(parsed.timestamp + timedelta(hours=hours), parsed.original)] = digest
    return out


def killed_run(tmp_path, where, n, *argv):
    proc = subprocess.run([sys.executable, "-c", KILLED, where, str(n), *argv], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr  # it really died mid-run
    return proc


def state_of(folders, before):
    """'original', 'shifted' or 'mixed' for each folder."""
    states = []
    for folder, old in zip(folders, before):
        now = contents(folder)
        states.append("original" if now == old else "shifted" if now == shifted(old, 1) else "mixed")
    return states


@pytest.mark.parametrize("kill_at", [3, 15, 25])  # in folder 1, in folder 2, the last move of folder 3
@pytest.mark.parametrize("mode", ["complete", "revert"])
def test_a_batch_killed_in_any_folder_is_recovered_in_all_of_them(tmp_path, capsys, kill_at, mode):
    folders = pipeline(tmp_path)
    before = [contents(f) for f in folders]
    killed_run(tmp_path, "move", kill_at, "--hours", "1")
    assert "mixed" in state_of(folders, before) or len(set(state_of(folders, before))) > 1
    assert adjust_timestamps.main(["--hours", "1"]) == 2  # a new run is refused until recovered
    assert "--recover complete" in capsys.readouterr().err
    code = adjust_timestamps.main(["--folders", str(folders[0]), "--recover", mode])  # one folder named: all follow
    out = capsys.readouterr().out
    assert code == 0, out
    want = "shifted" if mode == "complete" else "original"
    assert state_of(folders, before) == [want] * 3
    assert all(f"Processing folder: {folder}" in out or f"Processing folder: {folder.resolve()}" in out
               for folder in folders)
    assert not any(pending_batch(f) for f in folders)
    assert adjust_timestamps.main(["--recover", mode]) == 0  # again: nothing left, nothing changes
    assert "Nothing to do" in capsys.readouterr().out and state_of(folders, before) == [want] * 3
    if mode == "complete":  # the completed batch undoes as one, everywhere
        assert adjust_timestamps.main(["--undo"]) == 0
        assert state_of(folders, before) == ["original"] * 3


@pytest.mark.parametrize("mode", ["complete", "revert"])
def test_a_killed_recovery_is_itself_recovered_by_running_it_again(tmp_path, capsys, mode):
    folders = pipeline(tmp_path)
    before = [contents(f) for f in folders]
    killed_run(tmp_path, "move", 15, "--hours", "1")          # the batch dies in folder 2
    killed_run(tmp_path, "move", 4, "--recover", mode)          # and so does its recovery
    assert adjust_timestamps.main(["--recover", mode]) == 0     # the same command, once more
    want = "shifted" if mode == "complete" else "original"
    assert state_of(folders, before) == [want] * 3
    assert adjust_timestamps.main(["--recover", mode]) == 0 and state_of(folders, before) == [want] * 3


def test_a_batch_killed_before_its_first_move_is_closed_unchanged(tmp_path, capsys):
    folders = pipeline(tmp_path)
    before = [contents(f) for f in folders]
    killed_run(tmp_path, "begin", 2, "--hours", "1")  # folder 2's begin record is never written
    assert pending_batch(folders[0]) is not None and pending_batch(folders[1]) is None
    assert adjust_timestamps.main(["--recover", "complete"]) == 0
    out = capsys.readouterr().out
    assert "had not started renaming" in out and state_of(folders, before) == ["original"] * 3
    assert not any(pending_batch(f) for f in folders)


SLOW = """
import sys, time
from discordpicextract.renames import apply
real, calls = apply._Mover.move, [0]
def move(*args):
    calls[0] += 1
    if calls[0] == 3:
        print("moving", file=sys.stderr, flush=True)
        sys.stdin.readline()     # the test lets it go on
    return real(*args)
apply._Mover.move = move
import adjust_timestamps
sys.exit(adjust_timestamps.main(sys.argv[1:]))
"""


def test_while_a_batch_is_live_a_second_run_and_recovery_are_refused(tmp_path, capsys):
    folders = pipeline(tmp_path)
    before = [contents(f) for f in folders]
    live = subprocess.Popen([sys.executable, "-c", SLOW, "--hours", "-5"], cwd=tmp_path, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert live.stderr.readline().strip() == "moving"
        during = [contents(f) for f in folders]
        for argv in (["--hours", "-3"], ["--recover", "complete"], ["--recover", "revert"], ["--undo"]):
            assert adjust_timestamps.main(argv) == 2, argv
            err = capsys.readouterr().err
            assert "error: another run is using spx-" in err and f" (pid {live.pid}, -c: renames, since" in err
        assert [contents(f) for f in folders] == during  # nothing touched under the live run
    finally:
        out, err = live.communicate("\n", timeout=60)
        assert live.returncode == 0, err
    assert [contents(f) for f in folders] == [shifted(old, -5) for old in before]  # -5 once, never -8


def test_an_unattended_run_plans_under_its_locks_and_does_not_list_the_folders_again(tmp_path, monkeypatch):
    from discordpicextract import locking
    from discordpicextract.renames import apply, plan

    folders = pipeline(tmp_path)
    before = [contents(f) for f in folders]
    real_plan_folder, listed_again = plan.plan_folder, []

    def plan_folder_under_lock(folder, *args, **kwargs):
        assert locking.holds(folder)
        return real_plan_folder(folder, *args, **kwargs)
    monkeypatch.setattr(command, "plan_folder", plan_folder_under_lock)
    monkeypatch.setattr(apply, "check_still_fits", lambda folder, p: listed_again.append(folder))
    assert adjust_timestamps.main(["--hours", "1"]) == 0
    assert listed_again == [] and state_of(folders, before) == ["shifted"] * 3
    assert adjust_timestamps.main(["--undo"]) == 0 and listed_again == []   # nor does its undo
    assert state_of(folders, before) == ["original"] * 3


def test_a_plan_made_before_another_run_renamed_is_refused_not_applied_twice(tmp_path, capsys, monkeypatch):
    folders = pipeline(tmp_path)
    before = [contents(f) for f in folders]
    real_confirm = command.confirm

    def confirm_while_another_run_renames(outcomes, yes, dry_run):
        # the other run plans, takes the locks and renames between our plan and our apply
        monkeypatch.setattr(command, "confirm", real_confirm)
        assert adjust_timestamps.main(["--hours", "-5", "--yes"]) == 0
        return True
    # On a terminal a run plans, asks, and only then takes the locks (an
    # unattended run holds them from before its plan: no other run can come between).
    monkeypatch.setattr(cli, "is_interactive", lambda: True)
    monkeypatch.setattr(command, "confirm", confirm_while_another_run_renames)
    code = adjust_timestamps.main(["--hours", "-3"])
    err = capsys.readouterr().err
    assert code == 2 and "changed since the rename plan was made" in err
    assert [contents(f) for f in folders] == [shifted(old, -5) for old in before]


@pytest.mark.parametrize("bad", [
    [["../secret.png", "2025-03-03_10-00-00_x.png"]],     # a name outside the folder
    [["/etc/passwd", "2025-03-03_10-00-00_x.png"]],
    [["sub/inner.png", "2025-03-03_10-00-00_x.png"]],
    [[1, 2]],                                              # wrong types
])
def test_a_journal_naming_files_outside_its_folder_moves_nothing(tmp_path, capsys, bad):
    folder = fill(tmp_path / "f", names(2))
    (tmp_path / "secret.png").write_bytes(b"outside")
    (folder / "sub").mkdir()
    (folder / "sub" / "inner.png").write_bytes(b"inside a sub-folder")
    before, outside = contents(folder), (tmp_path / "secret.png").read_bytes()
    record = {"event": "begin", "batch": "evil", "label": "x", "created": "2025", "moves": bad,
              "steps": [[bad[0][0], bad[0][1], 0, os.lstat(tmp_path / "secret.png").st_ino]]}
    (folder / config.JOURNAL_FILE).write_text(json.dumps(record) + "\n")
    for argv in (["--recover", "complete"], ["--recover", "revert"], ["--undo"]):
        code = adjust_timestamps.main(["--folders", str(folder), *argv])
        err = capsys.readouterr().err
        assert code == 1 and "1 damaged line(s) ignored (line 1)" in err and "Traceback" not in err
    assert contents(folder) == before and (tmp_path / "secret.png").read_bytes() == outside
    assert (folder / "sub" / "inner.png").exists()
    wrong_types = {"event": "begin", "batch": "b", "moves": [["a.png", "b.png"]], "steps": [["a.png", "b.png", "0", 1]]}
    (folder / config.JOURNAL_FILE).write_text(json.dumps(wrong_types) + "\n")
    assert adjust_timestamps.main(["--folders", str(folder), "--recover", "complete"]) == 1


def test_undo_and_recover_run_beside_a_lock_held_elsewhere_only_as_dry_runs_that_refuse(tmp_path, capsys):
    folders = pipeline(tmp_path)
    assert adjust_timestamps.main(["--hours", "1"]) == 0
    after = [contents(f) for f in folders]
    with lock_held_elsewhere(folders[2]) as (pid,):
        assert adjust_timestamps.main(["--undo", "--dry-run"]) == 2
        assert adjust_timestamps.main(["--undo"]) == 2
        assert f"(pid {pid}" in capsys.readouterr().err
    assert [contents(f) for f in folders] == after


def test_a_full_disk_stops_a_rename_run_with_one_line_and_loses_nothing(tmp_path, capsys):
    with small_disk(1) as disk:
        if disk is None:
            pytest.skip("needs a small tmpfs (mount as root)")
        folder = fill(disk / "f", names(40))
        before = contents(folder)
        filler = fill_disk(disk)
        code = adjust_timestamps.main(["--folders", str(folder), "--hours", "1"])
        out, err = capsys.readouterr()
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 1 and len(lines) == 1 and "No space left on device" in lines[0], err
        assert "Traceback" not in err and sorted(contents(folder).values()) == sorted(before.values())
        assert leftovers(folder) == []   # not even the lock's note, half-written
        filler.unlink()
        for argv in (["--recover", "complete"], ["--hours", "1"]):  # recover if needed, then the run itself
            assert adjust_timestamps.main(["--folders", str(folder), *argv]) == 0, capsys.readouterr()
        assert contents(folder) == shifted(before, 1)


def test_a_record_naming_a_folder_without_a_journal_leaves_that_folder_alone(tmp_path, capsys):
    """A stale or forged record naming another folder: recovery neither
    locks it nor removes files there that look like our temp files."""
    folder = fill(tmp_path / "f", names(1))
    other = tmp_path / "other"
    other.mkdir()
    (other / ".photo.png.abcd1234.part").write_text("the user's, not ours")
    name, new = names(1)[0], names(2)[1]
    record = {"event": "begin", "batch": "b1", "label": "x", "created": "2025",
              "folders": [str(folder.resolve()), str(other.resolve())], "moves": [[name, new]],
              "steps": [[name, new, 0, os.lstat(folder / name).st_ino]]}
    (folder / config.JOURNAL_FILE).write_text(json.dumps(record) + "\n")
    assert adjust_timestamps.main(["--folders", str(folder), "--recover", "revert"]) == 0
    assert sorted(os.listdir(other)) == [".photo.png.abcd1234.part"]
    assert str(other) not in capsys.readouterr().out


def test_a_journal_that_is_a_link_is_not_followed_out_of_the_folder(tmp_path, capsys):
    folder = fill(tmp_path / "f", names(2))
    before = contents(folder)
    (tmp_path / "outside.txt").write_text("the user's\n")
    (folder / config.JOURNAL_FILE).symlink_to(tmp_path / "outside.txt")
    assert adjust_timestamps.main(["--folders", str(folder), "--hours", "1"]) == 2
    assert "is a link; not followed" in capsys.readouterr().err
    assert (tmp_path / "outside.txt").read_text() == "the user's\n" and contents(folder) == before


def _as_first_format(folders):
    """Rewrite every begin record of the folders' journals the way runs
    wrote them before the format-2 record (the journals already on users'
    disks): "moves" [[old, new]] and "steps" [[src, dst, move, inode]], no
    "format" nor "inodes". Returns how many it rewrote."""
    rewritten = 0
    for folder in folders:
        path = folder / config.JOURNAL_FILE
        lines = []
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line) if line.strip() else {}
            if record.get("event") == "begin" and record.pop("format", None) == 2:
                inodes, moves = record.pop("inodes"), record.pop("moves")
                steps = [[*moves[row], row] if type(row) is int else row for row in record.pop("steps")]
                record["moves"], record["steps"] = moves, [[*step, inodes[step[2]]] for step in steps]
                lines.append(json.dumps(record, separators=(",", ":")))
                rewritten += 1
            else:
                lines.append(line)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    from discordpicextract.renames import journal

    journal._PARSED.clear()   # this process's parsed copies are of the files as they were
    return rewritten


@pytest.mark.parametrize("mode", ["complete", "revert"])
def test_a_killed_batch_journaled_in_the_first_format_is_still_recovered(tmp_path, capsys, mode):
    folders = pipeline(tmp_path)
    before = [contents(f) for f in folders]
    killed_run(tmp_path, "move", 15, "--hours", "1")          # dies in folder 2
    assert _as_first_format(folders) == 3
    assert adjust_timestamps.main(["--hours", "1"]) == 2      # still seen as unfinished
    assert adjust_timestamps.main(["--recover", mode]) == 0
    want = "shifted" if mode == "complete" else "original"
    assert state_of(folders, before) == [want] * 3 and not any(pending_batch(f) for f in folders)


def test_a_batch_journaled_in_the_first_format_is_still_undone(tmp_path, capsys):
    from discordpicextract.renames.apply import apply_plan
    from discordpicextract.renames.plan import plan_mapping

    folders = pipeline(tmp_path)
    before = [contents(f) for f in folders]
    assert adjust_timestamps.main(["--hours", "1"]) == 0
    first, second = sorted(contents(folders[0]))[:2]
    swap = plan_mapping({first: second, second: first}, os.listdir(folders[0]))   # a cycle: through a temp name
    assert apply_plan(folders[0], swap, label="swap").done
    assert _as_first_format(folders) == 4
    steps = [step for line in (folders[0] / config.JOURNAL_FILE).read_text().splitlines()
             for step in json.loads(line).get("steps", [])]
    assert any(step[1].startswith(".dpe-rename-") for step in steps) and all(len(step) == 4 for step in steps)
    assert adjust_timestamps.main(["--folders", *map(str, folders), "--undo"]) == 0   # the swap
    assert contents(folders[0]) == shifted(before[0], 1)
    assert adjust_timestamps.main(["--folders", *map(str, folders), "--undo"]) == 0   # the +1 h batch
    assert [contents(f) for f in folders] == before


def test_rename_runs_remove_our_leftover_temp_files_in_every_folder_they_lock(tmp_path, capsys):
    """A killed write leaves `.part` files: the next run that locks the
    folder removes them, found in the listing it plans from (adjust) or
    the one it undoes from, and in a folder the undo has no part in too."""
    folders = pipeline(tmp_path)
    before = [contents(f) for f in folders]

    def leave_some():
        for folder in folders:
            (folder / ".2025-03-03_09-00-00_c0.png.k3j9x2q1.part").write_bytes(b"half")
    leave_some()
    assert adjust_timestamps.main(["--folders", *map(str, folders[:2]), "--hours", "1"]) == 0
    assert leftovers(folders[0]) == [] and leftovers(folders[1]) == []
    assert leftovers(folders[2]) == [".2025-03-03_09-00-00_c0.png.k3j9x2q1.part"]   # not locked: left alone
    leave_some()
    assert adjust_timestamps.main(["--undo"]) == 0          # over all three; the third has no part in it
    assert [leftovers(f) for f in folders] == [[], [], []]
    assert [contents(f) for f in folders] == before
