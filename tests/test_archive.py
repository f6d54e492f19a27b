"""The download archive follows renames made by the timestamp tools."""
from discordpicextract.archive import DownloadArchive, record_renames


def test_add_contains_and_swap_rename(tmp_path):
    with DownloadArchive(tmp_path) as archive:
        archive.add("m1:a1", "1", "2025-01-01_10-00-00_a.png", 10, "x" * 64)
        archive.add("m2:a2", "2", "2025-01-01_11-00-00_a.png", 12, "y" * 64)

    record_renames(tmp_path, {
        "2025-01-01_10-00-00_a.png": "2025-01-01_11-00-00_a.png",
        "2025-01-01_11-00-00_a.png": "2025-01-01_10-00-00_a.png",
    })

    with DownloadArchive(tmp_path) as archive:
        assert "m1:a1" in archive and "m9:a9" not in archive
        assert archive.filename_of("m1:a1") == "2025-01-01_11-00-00_a.png"
        assert archive.filename_of("m2:a2") == "2025-01-01_10-00-00_a.png"
        assert archive.keys() == {"m1:a1", "m2:a2"}


def test_record_renames_without_archive_creates_nothing(tmp_path):
    record_renames(tmp_path, {"a.png": "b.png"})
    assert list(tmp_path.iterdir()) == []
