from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.settings import load_settings
from bot.validation_settings import load_validation_settings
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
            "FINETUNE_PROVIDER: Input should be 'openai', 'azure', 'nebius', 'compatible' or 'sandbox'",
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


VALIDATION_ENVIRONMENTS = [
    {},
    {"FINETUNE_DEFAULT_MODEL": "gpt-4.1-mini-2025-04-14", "FINETUNE_MAX_FILE_MB": "64"},
    {"finetune_max_file_mb": " 12.0 "},
    {"FINETUNE_TRAINING_PRICES": '{"gpt-4o-mini-2024-07-18": 3, "ft:custom": "2.5"}'},
    {"FINETUNE_DEFAULT_MODEL": ""},
]


@pytest.mark.parametrize("environment", VALIDATION_ENVIRONMENTS)
def test_the_validate_command_reads_its_settings_as_the_bot_does(
    environment: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`finetune-bot validate` skips pydantic to start fast; it must still read what Settings reads."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    bot = load_settings()
    light = load_validation_settings()
    assert (light.default_model, light.max_file_bytes, light.training_prices) == (
        bot.finetune_default_model,
        bot.max_file_bytes,
        bot.finetune_training_prices,
    )


def test_the_validate_command_reads_dotenv_under_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("FINETUNE_MAX_FILE_MB=3\nfinetune_default_model=gpt-4.1-2025-04-14\n")
    monkeypatch.setenv("FINETUNE_MAX_FILE_MB", "5")
    bot, light = load_settings(), load_validation_settings()
    assert (light.max_file_mb, light.default_model) == (bot.finetune_max_file_mb, bot.finetune_default_model)
    assert (light.max_file_mb, light.default_model) == (5, "gpt-4.1-2025-04-14")


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({"FINETUNE_MAX_FILE_MB": "lots"}, r"^FINETUNE_MAX_FILE_MB: Input should be a valid integer"),
        ({"FINETUNE_MAX_FILE_MB": "0"}, r"^FINETUNE_MAX_FILE_MB must be at least 1\.$"),
        ({"FINETUNE_TRAINING_PRICES": "{gpt: 3}"}, r"^FINETUNE_TRAINING_PRICES is not valid JSON"),
        ({"FINETUNE_TRAINING_PRICES": '{"gpt": null}'}, r"^FINETUNE_TRAINING_PRICES"),
        ({"FINETUNE_TRAINING_PRICES": "[3]"}, r"^FINETUNE_TRAINING_PRICES"),
    ],
)
def test_both_readers_reject_the_same_bad_values(
    environment: dict[str, str], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=expected):
        load_settings()
    with pytest.raises(ConfigError, match=expected):
        load_validation_settings()


def test_several_providers_side_by_side(monkeypatch: pytest.MonkeyPatch) -> None:
    """FINETUNE_PROVIDERS from the environment, as JSON: each provider its own credentials; a misconfigured
    one is named in one line and left out, and the others run."""
    monkeypatch.setenv(
        "FINETUNE_PROVIDERS",
        '{"openai": {"kind": "openai", "api_key": "sk-one"},'
        ' "azure": {"kind": "azure", "base_url": "https://acme.openai.azure.com", "api_key": "az-two"},'
        ' "nebius": {"kind": "compatible", "api_key": "nb-three"}}',
    )
    settings = load_settings(_env_file=None)
    assert list(settings.provider_configs()) == ["openai", "azure", "nebius"]
    assert settings.default_provider == "openai"
    usable, left_out = settings.usable_providers()
    assert list(usable) == ["openai", "azure"]
    assert left_out == [
        "FINETUNE_PROVIDERS: provider nebius (compatible) needs base_url, e.g. https://host.example/v1; it is left out."
    ]
    settings.require_provider()  # the default one is usable: the bot starts
    assert usable["azure"].api_key is not None and usable["azure"].api_key.get_secret_value() == "az-two"


def test_the_default_provider_must_be_configured_and_usable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINETUNE_PROVIDERS", '{"azure": {"kind": "azure", "api_key": "secret-key-value"}}')
    with pytest.raises(ConfigError) as raised:
        load_settings(_env_file=None).require_provider()
    assert str(raised.value) == (
        "FINETUNE_PROVIDERS: provider azure (azure) needs base_url, e.g. https://<resource>.openai.azure.com: "
        "it is the default provider."
    )
    with pytest.raises(ConfigError) as unknown:
        load_settings(_env_file=None, finetune_default_provider="openai")
    assert "FINETUNE_DEFAULT_PROVIDER=openai is none of the configured providers (azure)" in str(unknown.value)
    monkeypatch.setenv("FINETUNE_PROVIDERS", '{"azure": {"kind": "azure", "api_key": "secret-key-value", "x": 1}}')
    with pytest.raises(ConfigError) as wrong:
        load_settings(_env_file=None)
    assert "secret-key-value" not in str(wrong.value), "the JSON holds keys: never echoed"


def test_one_provider_settings_make_the_one_provider() -> None:
    settings = load_settings(
        _env_file=None,
        finetune_provider="azure",
        azure_openai_endpoint="https://acme.openai.azure.com",
        azure_openai_api_key="k",
        azure_openai_deployments={"m.ft-1": "d"},
    )
    [(name, config)] = settings.provider_configs().items()
    assert (name, config.kind, config.base_url, config.deployments) == (
        "azure",
        "azure",
        "https://acme.openai.azure.com",
        {"m.ft-1": "d"},
    )
