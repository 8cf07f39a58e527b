from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import ConfigError, load_settings
from bot.workspaces import BOT_SCOPES


def test_defaults_are_embedded(tmp_path: Path) -> None:
    settings = load_settings(_env_file=None)
    assert settings.finetune_provider == "openai"
    assert settings.port == 3000
    assert settings.effective_database_url.startswith("sqlite+aiosqlite:///")
    assert settings.effective_database_url.endswith("/data/finetune-bot.db")
    assert not settings.has_slack_credentials


def test_env_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PORT=4100\nLOG_LEVEL=debug\nFINETUNE_PROVIDER=sandbox\n")
    settings = load_settings()
    assert (settings.port, settings.log_level, settings.finetune_provider) == (4100, "DEBUG", "sandbox")


def test_plain_database_urls_get_async_drivers() -> None:
    settings = load_settings(_env_file=None, database_url="postgresql://u@db:5432/bot")
    assert settings.effective_database_url == "postgresql+asyncpg://u@db:5432/bot"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"port": "http"}, "PORT: Input should be a valid integer"),
        ({"port": "70000"}, "PORT must be between 1 and 65535"),
        (
            {"finetune_provider": "bedrock"},
            "FINETUNE_PROVIDER: Input should be 'openai', 'azure', 'compatible' or 'sandbox'",
        ),
        ({"slack_bot_token": "xoxp-user-token"}, "SLACK_BOT_TOKEN must be a bot token starting with xoxb-"),
        ({"slack_app_token": "xoxb-1"}, "SLACK_APP_TOKEN must be an app-level token starting with xapp-"),
    ],
)
def test_invalid_values_become_one_line_naming_the_variable(overrides: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(_env_file=None, **overrides)
    assert str(raised.value).startswith(expected)
    assert "\n" not in str(raised.value)


def test_secret_values_are_never_echoed_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxp-very-secret-user-token")
    with pytest.raises(ConfigError) as raised:
        load_settings(_env_file=None)
    assert "very-secret" not in str(raised.value)
    assert "very-secret" not in repr(load_settings(_env_file=None, slack_bot_token="xoxb-very-secret"))


def test_missing_slack_and_provider_settings_name_the_fix() -> None:
    settings = load_settings(_env_file=None)
    with pytest.raises(ConfigError, match=r"^SLACK_BOT_TOKEN is not set: .*manifest.yml"):
        settings.require_slack()
    with pytest.raises(ConfigError, match=r"^Neither SLACK_APP_TOKEN \(Socket Mode\) nor SLACK_SIGNING_SECRET"):
        load_settings(_env_file=None, slack_bot_token="xoxb-1").require_slack()
    with pytest.raises(ConfigError, match=r"^OPENAI_API_KEY is not set for FINETUNE_PROVIDER=openai"):
        settings.require_provider()
    with pytest.raises(ConfigError, match=r"^FINETUNE_PROVIDER=compatible needs OPENAI_BASE_URL"):
        load_settings(_env_file=None, finetune_provider="compatible").require_provider()
    load_settings(_env_file=None, finetune_provider="sandbox").require_provider()


def test_multi_workspace_mode_names_what_it_still_needs() -> None:
    assert not load_settings(_env_file=None).slack_multi_workspace, "one workspace, SLACK_BOT_TOKEN, by default"
    with pytest.raises(ConfigError, match=r"^SLACK_MULTI_WORKSPACE=true needs SLACK_CLIENT_ID and SLACK_CLIENT_SECRET"):
        load_settings(_env_file=None, slack_multi_workspace=True).require_slack()
    with pytest.raises(ConfigError, match=r"^SLACK_MULTI_WORKSPACE=true and SLACK_BOT_TOKEN are both set"):
        load_settings(_env_file=None, slack_multi_workspace=True, slack_bot_token="xoxb-1").require_slack()
    oauth = {"slack_multi_workspace": True, "slack_client_id": "1.2", "slack_client_secret": "s"}
    with pytest.raises(ConfigError, match=r"^SLACK_MULTI_WORKSPACE=true needs SLACK_SIGNING_SECRET"):
        load_settings(_env_file=None, **oauth).require_slack()
    ready = load_settings(_env_file=None, slack_signing_secret="x", **oauth)
    ready.require_slack()
    assert ready.has_slack_credentials


def test_the_scopes_an_install_asks_for_are_the_manifests() -> None:
    manifest = (Path(__file__).resolve().parents[2] / "manifest.yml").read_text()
    bot_scopes = manifest.split("    bot:\n", 1)[1].split("settings:", 1)[0]
    assert tuple(line.strip().removeprefix("- ") for line in bot_scopes.splitlines() if line.strip()) == BOT_SCOPES
