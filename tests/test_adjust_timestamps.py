"""adjust_timestamps.py through main(argv) and as a subprocess, on real images."""
import io
import os
import subprocess
import sys
from datetime import datetime, timezone

from fault_helpers import lock_held_elsewhere
from helpers import ROOT, contents, fill, n

import adjust_timestamps
import config
from discordpicextract.archive import DownloadArchive
from discordpicextract.renames.apply import apply_plan
from discordpicextract.renames.plan import plan_folder
from discordpicextract.renames.values import shift_by

NAMES = [n("2025-01-01T02:00:00"), n("2025-01-01T07:00:00"), n("2025-03-01T03:00:00", "b.png"),
         n("2025-06-15T14:37:02", "c.png")]
SHIFTED = [n("2024-12-31T21:00:00"), n("2025-01-01T02:00:00"), n("2025-02-28T22:00:00", "b.png"),
           n("2025-06-15T09:37:02", "c.png")]


def three_folders(tmp_path):
    return [fill(tmp_path / name, NAMES[: 4 - i]) for i, name in enumerate(config.PIPELINE_FOLDERS)]


def test_without_a_terminal_a_bare_run_renames_nothing_and_exits_2(tmp_path, capsys):
    folders = three_folders(tmp_path)
    before = [contents(f) for f in folders]
    code = adjust_timestamps.main([])
    out, err = capsys.readouterr()
    assert code == 2 and "no terminal to confirm on" in err and "--to-post-time" in err and "--yes" in err
    assert [contents(f) for f in folders] == before and out == ""
    assert not any((f / config.JOURNAL_FILE).exists() for f in folders)
    # as a subprocess with no terminal (cron, a script): the same refusal
    proc = subprocess.run([sys.executable, str(ROOT / "adjust_timestamps.py")], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and "nothing was renamed" in proc.stderr
    assert [contents(f) for f in folders] == before


def test_default_shift_over_the_pipeline_folders(tmp_path, capsys):
    folders = three_folders(tmp_path)  # cwd is tmp_path: the defaults are found there
    before = [contents(f) for f in folders]
    code = adjust_timestamps.main(["--yes", "-v"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "File Timestamp Adjustment Script" in out
    assert "Subtracting 5 hours from the time in filenames" in out
    assert out.count("Processing folder:") == 3 and out.count("Mode: RENAME") == 3
    assert f"  RENAMED: {NAMES[1]} -> {SHIFTED[1]}" in out
    assert f"Summary for {config.DEFAULT_OUTPUT_DIR}:\n  Renamed: 4\n  Skipped: 0" in out
    assert "Total renamed: 9\n  Total skipped: 0" in out
    for folder, old in zip(folders, before):
        new = contents(folder)
        assert new == {SHIFTED[NAMES.index(name)]: sha for name, sha in old.items()}


def test_dry_run_changes_nothing_and_writes_no_journal(tmp_path, capsys):
    folders = three_folders(tmp_path)
    before = [contents(f) for f in folders]
    code = adjust_timestamps.main(["--dry-run", "--hours", "3"])
    out = capsys.readouterr().out
    assert code == 0 and out.count("Mode: DRY RUN") == 3 and out.count("WOULD RENAME:") == 9
    assert "Adding 3 hours" in out
    assert [contents(f) for f in folders] == before
    assert not any((f / config.JOURNAL_FILE).exists() for f in folders)


def test_collision_is_skipped_reported_and_exit_1(tmp_path, capsys):
    # 2025-01-01 07:00 -> 02:00 is fine (chain); an outsider blocks c's target
    folder = fill(tmp_path / "f", NAMES)
    (folder / SHIFTED[3]).mkdir()  # the target name is taken by something that is not an image file
    before = contents(folder)
    code = adjust_timestamps.main(["--folders", str(folder), "--hours", "-5"])
    out = capsys.readouterr().out
    assert code == 1
    assert f"SKIPPED: {NAMES[3]} -> {SHIFTED[3]} (target name is held by a file outside the batch)" in out
    assert "Renamed: 3\n  Skipped: 1" in out
    assert contents(folder)[NAMES[3]] == before[NAMES[3]]


def test_undo_restores_every_name_and_the_archive(tmp_path, capsys):
    folders = three_folders(tmp_path)
    with DownloadArchive(folders[0]) as archive:
        archive.add("m:1", 1, NAMES[0], 1, "x")
    before = [contents(f) for f in folders]
    assert adjust_timestamps.main(["--yes"]) == 0
    with DownloadArchive(folders[0]) as archive:
        assert archive.filename_of("m:1") == SHIFTED[0]
    code = adjust_timestamps.main(["--undo"])
    out = capsys.readouterr().out
    assert code == 0 and "Undo" in out
    assert [contents(f) for f in folders] == before
    with DownloadArchive(folders[0]) as archive:
        assert archive.filename_of("m:1") == NAMES[0]


def test_unfinished_batch_blocks_new_runs_until_recovered(tmp_path, capsys):
    folder = fill(tmp_path / "f", NAMES)
    before = contents(folder)
    plan = plan_folder(folder, shift_by(-5))
    apply_plan(folder, plan, label="adjust_timestamps --hours -5", stop_after=2)
    capsys.readouterr()
    code = adjust_timestamps.main(["--folders", str(folder), "--hours", "-5"])
    err = capsys.readouterr().err
    assert code == 2 and "--recover complete" in err and "--recover revert" in err
    assert adjust_timestamps.main(["--folders", str(folder), "--recover", "revert"]) == 0
    assert contents(folder) == before
    assert adjust_timestamps.main(["--folders", str(folder), "--hours", "-5"]) == 0


def test_terminal_user_confirms_first(tmp_path, capsys, monkeypatch):
    folder = fill(tmp_path / "f", NAMES)
    before = contents(folder)
    monkeypatch.setenv("DISCORDPICEXTRACT_INTERACTIVE", "1")
    monkeypatch.setattr(sys, "stdin", io.StringIO("perhaps\nno\n"))
    assert adjust_timestamps.main(["--folders", str(folder)]) == 0
    out, err = capsys.readouterr()
    assert "Rename 4 file(s) in 1 folder(s)? (Yes/No)" in err and "please answer Yes or No" in err
    # the preview comes first: the count, then the first and last renames of each folder
    preview = err.split("Would rename 4 file(s):")[1].split("Rename 4 file(s)")[0]
    assert f"  {folder}: 4 file(s) to rename" in preview
    assert f"    {NAMES[0]} -> {SHIFTED[0]}" in preview and f"    {NAMES[3]} -> {SHIFTED[3]}" in preview
    assert "Nothing renamed." in out and contents(folder) == before
    monkeypatch.setattr(sys, "stdin", io.StringIO("yes\n"))
    assert adjust_timestamps.main(["--folders", str(folder)]) == 0
    assert set(contents(folder)) == set(SHIFTED)


def test_bad_input_exits_2(tmp_path, capsys):
    folder = fill(tmp_path / "f", NAMES)
    for argv, message in ((["--hours", "five"], "hours must be a number"),
                          (["--hours", "0"], "must not be 0"),
                          (["--folders", str(folder), str(tmp_path / "gone")], "folder not found"),
                          (["--folders", str(folder), os.path.join(str(tmp_path), ".", "f")],
                           "the same folder is given twice"),
                          (["--undo", "--recover", "complete"], "not allowed with")):
        assert adjust_timestamps.main(["--folders", str(folder), *argv] if "--folders" not in argv else argv) == 2
        assert message in capsys.readouterr().err


def test_unparsed_names_are_reported_and_left_alone(tmp_path, capsys):
    folder = fill(tmp_path / "f", [*NAMES[:1], "IMG_0001.png"])
    code = adjust_timestamps.main(["--folders", str(folder), "--yes"])
    out = capsys.readouterr().out
    assert code == 1 and "UNPARSED: IMG_0001.png" in out and (folder / "IMG_0001.png").exists()


def test_subprocess_run(tmp_path):
    folders = three_folders(tmp_path)
    proc = subprocess.run([sys.executable, str(ROOT / "adjust_timestamps.py"), "--hours", "-5"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if k != "DISCORDPICEXTRACT_INTERACTIVE"},
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert "Total renamed: 9" in proc.stdout
    assert set(contents(folders[0])) == set(SHIFTED)


def test_undo_refuses_while_a_batch_is_unfinished(tmp_path, capsys):
    folder = fill(tmp_path / "f", NAMES)
    assert adjust_timestamps.main(["--folders", str(folder), "--hours", "1"]) == 0
    after_first = contents(folder)
    plan = plan_folder(folder, shift_by(-5))
    apply_plan(folder, plan, stop_after=2)
    capsys.readouterr()
    assert adjust_timestamps.main(["--folders", str(folder), "--undo"]) == 2
    assert "--recover" in capsys.readouterr().err
    assert adjust_timestamps.main(["--folders", str(folder), "--recover", "revert"]) == 0
    assert contents(folder) == after_first


def test_unreadable_folder_is_a_one_line_error(tmp_path):
    import pytest
    from test_deduplicate import without_root_file_powers

    prefix = without_root_file_powers()
    if prefix is None:
        pytest.skip("no way to make a folder unreadable here")
    fill(tmp_path / "f", NAMES)
    (tmp_path / "f").chmod(0)
    try:
        runs = [subprocess.run([*prefix, sys.executable, str(ROOT / script), *argv], cwd=tmp_path,
                               capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
                for script, argv in (("adjust_timestamps.py", ["--folders", "f"]),
                                     ("adjust_timestamps.py", ["--folders", "f", "--undo"]),
                                     ("quality_check_timestamps.py", ["--folder", "f"]))]
    finally:
        (tmp_path / "f").chmod(0o755)
    for done in runs:
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip() == "error: cannot read folder f: Permission denied"


def test_a_busy_folder_stops_the_run_before_any_folder_changes(tmp_path, capsys):
    folders = three_folders(tmp_path)
    before = [contents(f) for f in folders]
    with lock_held_elsewhere(folders[1]) as (pid,):
        assert adjust_timestamps.main(["--hours", "1"]) == 2
    assert f"another run is using {folders[1].name} (pid {pid}" in capsys.readouterr().err
    assert [contents(f) for f in folders] == before


def test_names_the_output_encoding_cannot_show_are_printed_escaped(tmp_path):
    folder = fill(tmp_path / "f", [n("2025-01-01T07:00:00", "\u56fe\u8868.png")])  # 图表.png
    proc = subprocess.run([sys.executable, str(ROOT / "adjust_timestamps.py"), "--folders", "f", "--hours", "-5", "-v"],
                          cwd=tmp_path, capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
                          env={**os.environ, "PYTHONIOENCODING": "cp1252"})
    assert proc.returncode == 0, proc.stderr
    assert b"RENAMED: 2025-01-01_07-00-00_\\u56fe\\u8868.png -> 2025-01-01_02-00-00_\\u56fe\\u8868.png" in proc.stdout
    assert set(contents(folder)) == {n("2025-01-01T02:00:00", "\u56fe\u8868.png")}


def test_a_run_prints_the_summary_and_per_file_lines_only_with_v(tmp_path, capsys):
    folder = fill(tmp_path / "f", NAMES)
    assert adjust_timestamps.main(["--folders", str(folder), "--yes"]) == 0
    out = capsys.readouterr().out
    assert "RENAMED" not in out and "(one line per renamed file with -v)" in out
    assert f"Summary for {folder}:\n  Renamed: 4\n  Skipped: 0" in out
    assert adjust_timestamps.main(["--folders", str(folder), "--undo"]) == 0
    out = capsys.readouterr().out
    assert "RENAMED" not in out and "  Renamed: 4" in out
    assert adjust_timestamps.main(["--folders", str(folder), "--yes", "-v"]) == 0
    assert f"  RENAMED: {NAMES[1]} -> {SHIFTED[1]}" in capsys.readouterr().out
    assert adjust_timestamps.main(["--folders", str(folder), "--dry-run"]) == 0     # a dry run shows its plan
    assert "WOULD RENAME: " in capsys.readouterr().out



def test_a_zone_conversion_records_no_zone_when_another_run_takes_a_folder_after_planning(
        tmp_path, capsys, monkeypatch):
    """The zone record is written under the same lock as the renames: a
    run that took a folder while this one planned (or asked on a terminal)
    makes this one exit 2 with no zone recorded in any folder and nothing renamed."""
    import contextlib

    from discordpicextract.renames import command
    from discordpicextract.timestamps import zone

    folders = three_folders(tmp_path)
    before = [contents(f) for f in folders]
    info = [f / config.FOLDER_INFO_FILE for f in folders]
    for folder in folders:   # names in UTC, recorded: each record would say America/New_York after
        zone.record_zone(folder, "UTC")
    records = [path.read_bytes() for path in info]
    with contextlib.ExitStack() as stack:
        pids = []
        asked = command.confirm

        def confirm_while_another_run_starts(*args, **kwargs):
            pids.extend(stack.enter_context(lock_held_elsewhere(folders[1])))
            return asked(*args, **kwargs)

        monkeypatch.setattr(command, "confirm", confirm_while_another_run_starts)
        code = adjust_timestamps.main(["--from-zone", "UTC", "--to-zone", "America/New_York"])
    assert code == 2
    assert f"another run is using {folders[1].name} (pid {pids[0]}" in capsys.readouterr().err
    assert [contents(f) for f in folders] == before
    assert [path.read_bytes() for path in info] == records


def test_the_records_beside_the_files_follow_an_adjust_and_its_undo_entry_by_entry(tmp_path, monkeypatch):
    """messages.csv, the copy record and the download archive are rewritten
    row by row (never held whole) and name exactly the files after an adjust
    and after its undo; a copy record in another layout follows too."""
    from discordpicextract import messages, records

    folder = fill(tmp_path / "f", NAMES)
    odd = "2025-01-01_02-00-00_\udcff.png"              # a name that is not UTF-8 (bytes \xff)
    (folder / odd).write_bytes((folder / NAMES[0]).read_bytes() + b"x")
    posted = datetime(2025, 1, 1, tzinfo=timezone.utc)
    rows = [messages.row(name, message_id=k, posted=posted, author='a, "quoted"', author_id=1,
                         text=f"line\nbreak{k}" + "\r" * (k == 2), guild_id=2, channel_id=3, source="attachment")
            for k, name in enumerate([*NAMES, odd])]
    messages.write_rows(folder, rows)
    entry = records.Entry("src.png", (1, 2, 3), (4, 5, 6), "d" * 32)
    def copied(k):   # the first is a copy of a file of its own name (a row says so without naming it)
        return records.Entry(NAMES[0] if k == 0 else f"s{k}", (1, 2, 3), (4, 5, k), "d" * 32)

    records.write_record(folder, {name: copied(k) for k, name in enumerate(NAMES)}
                         | {"gone.png": entry})  # a record entry with no file: left as it is
    with DownloadArchive(folder) as archive:
        archive.add("m:1", "1", NAMES[0], 10, "x" * 64)
    shifted_odd = "2024-12-31_21-00-00_\udcff.png"
    whole = records._record_renames_whole
    monkeypatch.setattr(records, "_record_renames_whole", None)   # the record as written: row by row
    monkeypatch.setattr(records, "_READ", 5)                      # read in parts that cut every row

    assert adjust_timestamps.main(["--folders", str(folder), "--hours", "-5", "--yes"]) == 0
    after = dict(zip([*NAMES, odd], [*SHIFTED, shifted_odd]))
    assert [r["file"] for r in messages.read_rows(folder)] == [after[r["file"]] for r in rows]
    assert messages.read_rows(folder)[1] == {**rows[1], "file": SHIFTED[1]}
    assert (folder / messages.MESSAGES_FILE).read_bytes() == messages.render(
        [{**r, "file": after[r["file"]]} for r in rows])        # the bytes write_rows would write
    assert records.read_record(folder) == {**{after[name]: copied(k) for k, name in enumerate(NAMES)},
                                           "gone.png": entry}
    (tmp_path / "same").mkdir()
    records.write_record(tmp_path / "same", records.read_record(folder))
    assert records.record_path(folder).read_bytes() == records.record_path(tmp_path / "same").read_bytes()
    with DownloadArchive(folder) as archive:
        assert archive.filename_of("m:1") == SHIFTED[0]

    text = json_relaid(records.record_path(folder))               # another layout: read and written whole
    monkeypatch.setattr(records, "_record_renames_whole", whole)
    assert adjust_timestamps.main(["--folders", str(folder), "--undo"]) == 0
    assert [r["file"] for r in messages.read_rows(folder)] == [r["file"] for r in rows]
    assert records.read_record(folder) == {**{name: copied(k) for k, name in enumerate(NAMES)}, "gone.png": entry}
    assert records.record_path(folder).read_text() != text
    monkeypatch.setattr(records, "_record_renames_whole", None)   # row by row again, there and back
    assert adjust_timestamps.main(["--folders", str(folder), "--hours", "-5", "--yes"]) == 0
    assert adjust_timestamps.main(["--folders", str(folder), "--undo"]) == 0
    records.write_record(tmp_path / "same", records.read_record(folder))
    assert records.record_path(folder).read_bytes() == records.record_path(tmp_path / "same").read_bytes()
    with DownloadArchive(folder) as archive:
        assert archive.filename_of("m:1") == NAMES[0]


def json_relaid(path):
    import json

    text = json.dumps(json.loads(path.read_text()), indent=1)
    path.write_text(text)
    return text


def test_a_retried_undo_moves_only_the_batchs_own_files_never_one_put_in_their_place(tmp_path, capsys):
    """Undo finds each file by the inode the journal recorded, not by name:
    a file put under a name of the batch since (a different image) is left
    alone and reported, and it holds the batch back no more than a name
    that is gone."""
    from helpers import write_image

    folder = tmp_path / "f"
    write_image(folder / "2025-06-02_10-00-00_a.png", seed=1)
    write_image(folder / "2025-06-02_09-00-00_b.png", seed=2)
    stranger = write_image(tmp_path / "other.png", seed=3)   # made while a's file exists: another inode
    assert adjust_timestamps.main(["--hours", "1", "--folders", "f", "--yes"]) == 0
    (folder / "2025-06-02_11-00-00_a.png").unlink()          # a superseded pick deleted
    assert adjust_timestamps.main(["--undo", "--folders", "f"]) == 1
    assert sorted(os.listdir(folder)) == sorted([config.JOURNAL_FILE, *_lock_files(folder),
                                                 "2025-06-02_09-00-00_b.png"])
    os.rename(stranger, folder / "2025-06-02_11-00-00_a.png")
    stranger_bytes = (folder / "2025-06-02_11-00-00_a.png").read_bytes()
    capsys.readouterr()
    assert adjust_timestamps.main(["--undo", "--folders", "f"]) == 0   # nothing of the batch is left to revert
    out = capsys.readouterr().out
    assert "Nothing to do" in out
    assert (folder / "2025-06-02_11-00-00_a.png").read_bytes() == stranger_bytes
    assert not (folder / "2025-06-02_10-00-00_a.png").exists()

    # replaced before the first undo: reported, left alone, exit 1; the rest reverted
    again = tmp_path / "g"
    write_image(again / "2025-06-02_10-00-00_a.png", seed=1)
    write_image(again / "2025-06-02_09-00-00_b.png", seed=2)
    stranger = write_image(tmp_path / "other.png", seed=3)
    assert adjust_timestamps.main(["--hours", "1", "--folders", "g", "--yes"]) == 0
    (again / "2025-06-02_11-00-00_a.png").unlink()
    os.rename(stranger, again / "2025-06-02_11-00-00_a.png")
    capsys.readouterr()
    assert adjust_timestamps.main(["--undo", "--folders", "g"]) == 1
    out = capsys.readouterr().out
    assert ("SKIPPED: 2025-06-02_11-00-00_a.png -> 2025-06-02_10-00-00_a.png (the file there was replaced "
            "since the batch: left alone)") in out
    assert (again / "2025-06-02_11-00-00_a.png").read_bytes() == stranger_bytes
    assert (again / "2025-06-02_08-00-00_b.png").exists() is False
    assert (again / "2025-06-02_09-00-00_b.png").exists() and not (again / "2025-06-02_10-00-00_a.png").exists()
    assert adjust_timestamps.main(["--undo", "--folders", "g"]) == 0   # not stuck on it: nothing further back
    assert (again / "2025-06-02_11-00-00_a.png").read_bytes() == stranger_bytes


def _lock_files(folder):
    return [name for name in os.listdir(folder) if name.startswith(".discordpicextract.lock")]
