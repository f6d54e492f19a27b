"""Token loading: environment first, then .env; API base override."""
import config


def test_token_from_dotenv_file(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("DISCORD_USER_TOKEN=tok-from-file\n")
    assert config.load_token() == ("tok-from-file", "user")


def test_environment_wins_and_bot_kind(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("DISCORD_BOT_TOKEN=tok-file\n")
    monkeypatch.setenv("DISCORD_BOT_TOKEN", "tok-env")
    assert config.load_token() == ("tok-env", "bot")


def test_no_token(tmp_path):
    assert config.load_token() == (None, None)


def test_api_base_override(monkeypatch):
    assert config.api_base() == "https://discord.com/api/v10"
    monkeypatch.setenv("DISCORD_API_BASE", "http://127.0.0.1:9/api/v10/")
    assert config.api_base() == "http://127.0.0.1:9/api/v10"


def test_an_exported_bot_token_wins_over_a_user_token_left_in_dotenv(tmp_path, monkeypatch):
    import os

    (tmp_path / ".env").write_text("DISCORD_USER_TOKEN=tok-stale\n")
    monkeypatch.setenv("DISCORD_BOT_TOKEN", "tok-bot")
    assert config.load_token() == ("tok-bot", "bot")
    assert "DISCORD_USER_TOKEN" not in os.environ  # .env is read, not copied into the environment
