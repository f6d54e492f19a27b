"""The copy steps' record of what they wrote: plan and apply a re-sync."""
import os

from helpers import write_image

from discordpicextract import records


def sync(source, output, wanted):
    sources = {p.name: p for p in source.iterdir() if not p.name.startswith(".")}
    state = records.fetch_state(output, sources, set(wanted))
    plan = records.plan_sync(state, set(wanted))
    output.mkdir(exist_ok=True)
    return plan, records.apply_sync(output, state, plan)


def test_resync_removes_only_its_own_unchanged_copies(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    a = write_image(src / "2025-02-14_10-00-00_a.png", seed=1)
    b = write_image(src / "2025-02-14_11-00-00_b.png", seed=2)
    os.utime(a, ns=(0, 1_700_000_000_123_456_789))
    plan, result = sync(src, out, [a.name, b.name])
    assert result.copied == [a.name, b.name]
    assert (out / a.name).stat().st_mtime_ns == 1_700_000_000_123_456_789   # the copy keeps the time
    user = write_image(out / "2025-02-14_12-00-00_mine.png", seed=3)

    plan, result = sync(src, out, [b.name])        # a is superseded
    assert result.removed == [a.name] and not (out / a.name).exists()
    assert result.identical == [b.name] and result.user_files == [user.name] and user.exists()

    write_image(out / b.name, seed=4)              # the user edited our copy: now theirs
    plan, result = sync(src, out, [])
    assert result.changed == [b.name] and (out / b.name).exists() and not result.removed


def test_renames_in_both_folders_keep_the_copy(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    a = write_image(src / "2025-02-14_10-00-00_a.png", seed=1)
    sync(src, out, [a.name])
    new = "2025-02-14_05-00-00_a.png"
    os.rename(a, src / new)
    os.rename(out / a.name, out / new)
    records.record_renames(out, {a.name: new})
    plan, result = sync(src, out, [new])
    assert plan.keep == [new] and not plan.copy and not plan.remove

    os.rename(src / new, src / a.name)             # the source alone renamed back
    plan, result = sync(src, out, [a.name])
    assert result.copied == [a.name] and result.removed == [new]


def test_a_folder_without_record_adopts_identical_copies(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    a = write_image(src / "2025-02-14_10-00-00_a.png", seed=1)
    b = write_image(src / "2025-02-14_11-00-00_b.png", seed=2)
    out.mkdir()
    (out / a.name).write_bytes(a.read_bytes())      # an older version's pick
    (out / b.name).write_bytes(b.read_bytes())
    stranger = write_image(out / "2025-02-14_09-00-00_x.png", seed=9)
    plan, result = sync(src, out, [b.name])
    assert result.removed == [a.name] and result.identical == [b.name]
    assert result.user_files == [stranger.name] and stranger.exists()
    assert records.read_record(out).keys() == {b.name}


def test_the_copy_record_gets_the_mode_new_files_get_and_keeps_it_through_renames(tmp_path, monkeypatch, capsys):
    import adjust_timestamps
    import deduplicate_images

    monkeypatch.chdir(tmp_path)
    write_image(tmp_path / "in" / "2025-06-02_14-00-00_a.png", seed=1)
    write_image(tmp_path / "in" / "2025-06-03_14-00-00_b.png", seed=2)
    mask = os.umask(0o027)   # a umask of the user's, not the default
    try:
        assert deduplicate_images.main(["--source", "in", "--output", "out"]) == 0
        record = tmp_path / "out" / records.RECORD_FILE
        modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "out").iterdir() if p.is_file()}
        assert modes[records.RECORD_FILE] == 0o640, modes     # 0o666 less the umask, as every other file
        assert adjust_timestamps.main(["--folders", "out", "--hours", "1", "--yes"]) == 0
        assert (tmp_path / "out" / "2025-06-02_15-00-00_a.png").exists()
        assert record.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(mask)
    capsys.readouterr()


def test_messages_rows_are_kept_for_the_next_reader_only_inside_a_pipeline_run(tmp_path):
    """A step run alone reads messages.csv once: holding its 100,000 rows
    after would only cost memory. Inside listings.shared (main.py
    --pipeline) the last file's rows are kept, and let go at the end."""
    from datetime import datetime, timezone

    from discordpicextract import listings, messages

    rows = [messages.row(f"2025-01-02_10-00-0{i}_a.png", message_id=10**17 + i,
                         posted=datetime(2025, 1, 2, 15, tzinfo=timezone.utc), author="a", author_id=1,
                         text="t", guild_id=1, channel_id=2, source="attachment") for i in range(3)]
    messages.write_rows(tmp_path, rows)
    assert messages.read_rows(tmp_path)[0]["file"] == rows[0]["file"]
    assert not messages._PARSED
    with listings.shared():
        messages.read_rows(tmp_path)
        assert len(next(iter(messages._PARSED.values()))[1]) == 3
    assert not messages._PARSED
