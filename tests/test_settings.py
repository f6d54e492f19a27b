"""The settings file: values into config for one run, errors naming key and line."""
import pytest

import config
from discordpicextract import settings
from discordpicextract.settings import SettingsError

GOOD = '''\
days = 3
timezone = "Europe/London"
workers = 4

[market]
start = "09:00:00"
end = "17:30:00"

[folders]
download = "dl"
clean = "dl-c"
one_per_day = "dl-1"

[folder_template]
clean = "{folder}-unique"

[[channel]]
id = "123456789012345678"
folder = "signals"

[[channel]]
name = "spx-realtime-aws"
guild = "数学家炒美股"
folder = "spx"
days = 2
'''


def write(tmp_path, text, name="discordpicextract.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_file_sets_config_for_the_run_only(tmp_path):
    loaded = settings.load(write(tmp_path, GOOD))
    before = (config.DEFAULT_DAYS, config.TIMEZONE, config.PIPELINE_FOLDERS)
    with settings.applied(loaded, config):
        assert config.DEFAULT_DAYS == 3 and config.TIMEZONE == "Europe/London"
        assert config.DEFAULT_WORKERS == 4 and config.TRADING_END == "17:30:00"
        assert config.PIPELINE_FOLDERS == ("dl", "dl-c", "dl-1")
    assert before == (config.DEFAULT_DAYS, config.TIMEZONE, config.PIPELINE_FOLDERS)
    first, second = loaded.channels
    assert (first.id, first.folder, first.line) == ("123456789012345678", "signals", 17)
    assert (second.name, second.guild, second.days) == ("spx-realtime-aws", "数学家炒美股", 2)
    assert loaded.folder_set(first) == ("signals", "signals-unique", "signals-1perDay")


def test_found_in_the_working_folder_or_named(tmp_path):
    assert settings.find(cwd=tmp_path) is None
    path = write(tmp_path, "days = 1\n")
    assert settings.find(cwd=tmp_path) == path
    with pytest.raises(SettingsError, match=r"--config file not found: nope\.toml"):
        settings.find("nope.toml")


@pytest.mark.parametrize("text, message", [
    ("days = 3\ndayz = 4\n", ":2: unknown key 'dayz'"),
    ("days = \"three\"\n", ":1: days: expected a number, got a string ('three')"),
    ("days = true\n", ":1: days: expected a number, got a boolean"),
    ("workers = 2.5\n", ":1: workers: expected a whole number"),
    ("timezone = \"Mars/Olympus\"\n", ":1: timezone: unknown time zone: 'Mars/Olympus'"),
    ("[market]\ntimezone = \"right/America/New_York\"\n",
     ":2: market.timezone: 'right/America/New_York' is a variant copy of the zone database, not a plain zone name; "
     "use 'America/New_York'"),
    ("\n[market]\nstart = \"9:30\"\n", ":3: market.start: expected a time HH:MM:SS"),
    ("[market]\nopen = \"09:30:00\"\n", ":2: unknown key 'open' in [market]"),
    ("market = 3\n", ":1: market must be a table"),
    ("[folder_template]\nclean = \"fixed\"\n", ":2: folder_template.clean: expected a folder name holding {folder}"),
    ("[[channel]]\nid = \"123456789012345678\"\nfolder = \"a\"\n\n[[channel]]\nid = \"223456789012345678\"\n"
     "folder = \"b\"\ncolour = 1\n", ":8: unknown key 'colour' in [[channel]] number 2"),
    ("[[channel]]\nid = 12\nfolder = \"a\"\n", ":2: channel.id: expected a channel ID"),
    ("[[channel]]\nname = \"x\"\nfolder = \"a\"\n", ":1: [[channel]] number 1 names a channel without its guild"),
    ("[[channel]]\nid = \"123456789012345678\"\n", ":1: [[channel]] number 1 has no folder"),
    ("[[channel]]\nfolder = \"a\"\n", ":1: [[channel]] number 1 needs either id, or name and guild"),
    ("[[channel]]\nid = \"123456789012345678\"\nfolder = \"a\"\n[[channel]]\nid = \"223456789012345678\"\n"
     "folder = \"A\"\n", ":4: channel folder 'A' is also used by the channel at line 1"),
    ("days = [\n", ": not valid TOML"),
])
def test_errors_name_the_key_and_its_line(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(SettingsError) as caught:
        settings.load(path)
    assert str(caught.value).startswith(str(path))
    assert message in str(caught.value)
