"""Issue 9 as a hostile user tries it: a damaged archive row, the zone
conversion run twice, and a conversion over folders recorded in different
zones. Through the scripts' main(argv), on real image files in tmp_path."""
import json
import sqlite3

from helpers import fill, n

import adjust_timestamps as adjust
import config
import quality_check_timestamps as qc
from discordpicextract import naming
from discordpicextract.timestamps import zone


def run(capsys, script, *argv):
    code = script.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def names(folder):
    return sorted(p.name for p in folder.iterdir() if naming.is_image_name(p.name))


def record(folder, names_zone):
    (folder / config.FOLDER_INFO_FILE).write_text(json.dumps({"names_zone": names_zone}), encoding="utf-8")


def test_an_archive_row_with_a_damaged_size_is_a_one_line_error_not_a_traceback(tmp_path, capsys):
    folder = fill(tmp_path / "f", [n("2025-06-02T10:00:00")])
    other = tmp_path / "other.sqlite3"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE downloads (item_key, message_id, filename, size, sha256)")
    db.execute("INSERT INTO downloads VALUES ('k', '1380000000000000000', 'a.png', NULL, NULL)")
    db.commit()
    db.close()
    for script, argv in ((qc, ["--folder", folder, "--verify", "--no-adjust"]),
                         (adjust, ["--folders", folder, "--to-post-time", "--dry-run"])):
        code, out, err = run(capsys, script, *argv, "--archive", other)
        assert code == 2, out + err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert str(other) in err and "damaged row" in err


def test_converting_from_a_zone_twice_is_refused_and_renames_nothing(tmp_path, capsys):
    folder = fill(tmp_path / "f", [n("2025-06-02T14:00:00"), n("2025-12-02T15:00:00")])
    record(folder, "UTC")
    code, out, err = run(capsys, adjust, "--folders", folder, "--from-zone", "UTC")
    assert code == 0, out + err
    converted = names(folder)
    assert converted == [n("2025-06-02T10:00:00"), n("2025-12-02T10:00:00")]
    # the same documented command again (a rerun, a second terminal): the names
    # are New York wall time now, reading them as UTC would shift them again
    code, out, err = run(capsys, adjust, "--folders", folder, "--from-zone", "UTC")
    assert code == 2, out + err
    assert "already" in err and "--undo" in err
    assert names(folder) == converted and zone.read_zone(folder) == "America/New_York"
    # after an undo the conversion may run again
    assert run(capsys, adjust, "--folders", folder, "--undo")[0] == 0
    assert zone.read_zone(folder) == "UTC"
    assert run(capsys, adjust, "--folders", folder, "--from-zone", "UTC")[0] == 0
    assert names(folder) == converted


def test_a_conversion_over_folders_recorded_in_different_zones_is_refused(tmp_path, capsys):
    a = fill(tmp_path / "a", [n("2025-06-02T14:00:00")])
    b = fill(tmp_path / "b", [n("2025-06-02T10:00:00")])
    record(a, "UTC")
    record(b, "America/New_York")
    code, out, err = run(capsys, adjust, "--folders", a, b, "--from-zone", "UTC")
    assert code == 2, out + err
    assert f"{a} (UTC)" in err and f"{b} (America/New_York)" in err
    assert names(a) == [n("2025-06-02T14:00:00")] and names(b) == [n("2025-06-02T10:00:00")]
    assert zone.read_zone(a) == "UTC" and zone.read_zone(b) == "America/New_York"
