"""The shared timestamped-name module."""
import os
from datetime import datetime

import pytest

from discordpicextract import naming


def test_parse_and_format_round_trip():
    parsed = naming.parse_name("2025-03-10_08-38-27_images_SPX-liqtest.png")
    assert parsed.timestamp == datetime(2025, 3, 10, 8, 38, 27)
    assert parsed.original == "images_SPX-liqtest.png"
    assert parsed.name == "2025-03-10_08-38-27_images_SPX-liqtest.png"
    assert naming.format_name(datetime(2024, 1, 5, 4, 3, 2), "x.jpg") == "2024-01-05_04-03-02_x.jpg"


@pytest.mark.parametrize("bad", [
    "image.png",                      # no timestamp
    "2025-3-10_08-38-27_a.png",       # short month
    "2025-02-30_08-38-27_a.png",      # impossible date
    "2025-02-10_24-00-00_a.png",      # impossible hour
    "2025-02-10_08-38-27.png",        # no original name
])
def test_unparseable_names_raise(bad):
    with pytest.raises(naming.BadName):
        naming.parse_name(bad)
    assert naming.try_parse_name(bad) is None


def test_list_images_orders_and_reports_unparsed(tmp_path, make_image):
    make_image(tmp_path / "2025-03-10_10-00-00_b.png", seed=1)
    make_image(tmp_path / "2025-03-10_10-00-00_a.PNG", seed=2)
    make_image(tmp_path / "2025-03-09_23-59-59_z.jpg", seed=3)
    make_image(tmp_path / "holiday.png", seed=4)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".discordpicextract-archive.sqlite3").write_bytes(b"")
    make_image(tmp_path / ".2025-03-10_10-00-00_hidden.png", seed=5)

    listing = naming.list_images(tmp_path)

    assert [i.name for i in listing.images] == [
        "2025-03-09_23-59-59_z.jpg",
        "2025-03-10_10-00-00_a.PNG",
        "2025-03-10_10-00-00_b.png",
    ]
    assert [p.name for p in listing.unparsed] == ["holiday.png"]


def test_list_images_orders_by_timestamp_where_name_order_differs(tmp_path, make_image):
    """Names sort as their stamps but for unusual digits: a stamp in
    Arabic-Indic digits sorts after every ASCII name, yet its time says
    where it belongs."""
    arabic = "\u0662\u0660\u0662\u0664-01-02_03-04-05_a.png"   # 2024-01-02 03:04:05
    make_image(tmp_path / arabic, seed=1)
    make_image(tmp_path / "2024-01-02_03-04-06_b.png", seed=2)
    make_image(tmp_path / "2024-01-02_03-04-04_c.png", seed=3)

    listing = naming.list_images(tmp_path)

    assert [i.name for i in listing.images] == ["2024-01-02_03-04-04_c.png", arabic,
                                                "2024-01-02_03-04-06_b.png"]


@pytest.mark.parametrize("raw, expected", [
    ("../../etc/passwd.png", "_._etc_passwd.png"),
    ("a\x00b\x1fc.png", "abc.png"),
    ('what<>:"|?*.png', "what_______.png"),
    ("CON.png", "CON_.png"),
    ("", "image.png"),
    ("...", "image.png"),
    ("数学家.png", "数学家.png"),
])
def test_sanitize_original(raw, expected):
    assert naming.sanitize_original(raw) == expected


def test_sanitize_caps_length_and_keeps_extension():
    long_name = "数" * 200 + ".jpeg"
    safe = naming.sanitize_original(long_name)
    assert safe.endswith(".jpeg")
    assert len(safe.encode("utf-8")) <= naming.MAX_ORIGINAL_BYTES
    assert "/" not in safe and "\\" not in safe


def test_unique_name_uses_the_exists_check():
    taken = {"a.png", "a_2.png"}
    assert naming.unique_name("b.png", taken.__contains__) == "b.png"
    assert naming.unique_name("a.png", taken.__contains__) == "a_3.png"


@pytest.mark.parametrize("name", ["a.png", ".png", "..png", "...a.png", "a.PNG", "a.png.txt", "noext", ".", "",
                                  "a.", "x.jpeg", ".hidden.jpg", "a.b.gif", "..", ".x.", "ab.Webp", "a.png.",
                                  "a .png", "2025-01-02_09-30-00_chart.bmp"])
def test_image_names_are_read_as_splitext_reads_their_extension(name):
    assert naming.is_image_name(name) == (os.path.splitext(name)[1].lower() in naming.IMAGE_EXTENSIONS)


@pytest.mark.parametrize("name", ["0999-12-31_23-59-59_old.png", "2025-03-09_02-30-00_dst gap.png",
                                  "9999-01-01_00-00-00_last.webp"])
def test_a_parsed_name_formats_back_to_itself(name):
    assert naming.parse_name(name).name == name


def _stamp_by_fields(name):
    """The reference: the regex's stamp read field by field, as datetime() checks it."""
    match = naming._NAME_RE.match(name)
    if not match:
        return None
    text = match.group(1)
    try:
        if not text.isascii():
            return datetime.strptime(text, naming.NAME_TIME_FORMAT)
        return datetime(int(text[0:4]), int(text[5:7]), int(text[8:10]),
                        int(text[11:13]), int(text[14:16]), int(text[17:19]))
    except ValueError:
        return None


@pytest.mark.parametrize("stamp", [
    "2024-01-02_03-04-05", "0001-01-01_00-00-00", "9999-12-31_23-59-59", "2024-02-29_12-00-00",
    "2023-02-29_12-00-00", "2024-04-31_00-00-00", "0000-01-01_00-00-00", "2024-00-10_00-00-00",
    "2024-13-01_00-00-00", "2024-01-00_00-00-00", "2024-01-32_00-00-00", "2024-01-01_24-00-00",
    "2024-01-01_23-60-00", "2024-01-01_23-59-60", "2024-01-01_99-99-99",
    "\u0662\u0660\u0662\u0664-01-02_03-04-05",   # Arabic-Indic digits: strptime decides
])
def test_stamps_are_accepted_exactly_as_field_by_field(stamp):
    name = f"{stamp}_a.png"
    expected = _stamp_by_fields(name)
    assert naming.parse_stamp_of(name) == expected
    assert (naming.try_parse_name(name) or (None,))[0] == expected
