"""Settings: the only place that reads the environment (and ``.env``).

A missing or contradictory setting becomes one ``ConfigError`` line that names the variable and
the fix; the command line prints it and exits with status 2, never a traceback.
"""

from __future__ import annotations

import importlib.util
import json
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from bot.errors import ConfigError
from bot.validation_settings import DEFAULT_MAX_FILE_MB, DEFAULT_MODEL, FIX

ProviderName = Literal["openai", "azure", "nebius", "compatible", "sandbox"]

NEBIUS_API = "https://api.tokenfactory.nebius.com/v1/"

SECRET_SUFFIXES = ("_TOKEN", "_SECRET", "_KEY", "_PROVIDERS")
PROVIDER_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


class ProviderConfig(BaseModel):
    """One fine-tuning provider of FINETUNE_PROVIDERS, with its own credentials."""

    model_config = ConfigDict(extra="forbid")

    kind: ProviderName
    label: str | None = None  # how people see it named; the kind's usual name by default
    api_key: SecretStr | None = None
    # openai and compatible: the API root (https://host/v1); azure: the resource endpoint.
    base_url: str | None = None
    # Azure: the versioned API ("2025-04-01-preview"), or "v1" for /openai/v1/ without an api-version.
    api_version: str = "2025-04-01-preview"
    # Azure serves a fine-tuned model under a deployment name: {"<model id>": "<deployment>"}
    deployments: dict[str, str] = {}
    # Base models offered for training; empty means every model of bot/models/catalog.py the host lists.
    base_models: list[str] = []
    # Azure: where the job trains (Standard, GlobalStandard or developerTier), sent as trainingType.
    training_type: str = "GlobalStandard"
    # Where a base model is served under another id than it is tuned under (Nebius):
    # {"meta-llama/Llama-3.1-8B-Instruct": "meta-llama/Meta-Llama-3.1-8B-Instruct"}, over the adapter's own.
    serving_ids: dict[str, str] = {}
    # Azure: deploy fine-tunes from the bot through the management API (an Entra token, not the API key).
    subscription_id: str | None = None
    resource_group: str | None = None
    account: str | None = None  # the Azure OpenAI resource's name
    deployment_sku: str = "standard"  # or globalstandard, developer
    # A bearer token for management.azure.com; unset means azure-identity's DefaultAzureCredential.
    management_token: SecretStr | None = None
    management_url: str = "https://management.azure.com"

    @property
    def deploys_from_bot(self) -> bool:
        """Whether the bot can create deployments itself (else they are made by hand and listed in deployments)."""
        if self.kind == "nebius":
            return True
        return self.kind == "azure" and bool(self.subscription_id and self.resource_group and self.account)

    def problem(self) -> str | None:
        """What this provider still needs, or None when it can be used."""
        if self.kind == "sandbox":
            return None
        if self.kind == "azure" and any((self.subscription_id, self.resource_group, self.account)):
            missing = [
                name
                for name, value in (
                    ("subscription_id", self.subscription_id),
                    ("resource_group", self.resource_group),
                    ("account", self.account),
                )
                if not value
            ]
            if missing:
                return (
                    "deploys from the bot only with subscription_id, resource_group and account; "
                    f"add {', '.join(missing)}"
                )
        if self.kind in ("azure", "compatible") and not self.base_url:
            example = "https://<resource>.openai.azure.com" if self.kind == "azure" else "https://host.example/v1"
            return f"needs base_url, e.g. {example}"
        if self.api_key is None and self.kind == "azure":
            if importlib.util.find_spec("azure.identity") is None:
                return "needs api_key, or Entra ID through azure-identity (pip install 'finetune-bot[azure]')"
            return None
        if self.api_key is None:
            return "needs api_key"
        return None


SLACK_SETUP_HINT = "create the app from manifest.yml (README, 'Connect to Slack')"


class Settings(BaseSettings):
    """Every setting the bot reads, with its environment variable in capitals."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    # Multi-workspace install: workspaces add the app through /slack/install (OAuth v2) and each
    # one's bot token is kept in the database. Off by default: one workspace, SLACK_BOT_TOKEN.
    slack_multi_workspace: bool = False
    slack_client_id: str | None = None
    slack_client_secret: SecretStr | None = None
    # Where Slack sends people back after they approve; unset means the app's configured redirect URL.
    slack_redirect_uri: str | None = None

    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_webhook_secret: SecretStr | None = None
    finetune_provider: ProviderName = "openai"
    # Several providers side by side: {"<name>": {"kind": "azure", "base_url": …, "api_key": …}, …}.
    # Unset: the one provider that FINETUNE_PROVIDER and the OPENAI_*/AZURE_* settings describe.
    finetune_providers: dict[str, ProviderConfig] = {}
    # Where a base model named without "@provider" is trained, chatted with and evaluated; the first by default.
    finetune_default_provider: str | None = None
    azure_openai_endpoint: str | None = None
    azure_openai_api_key: SecretStr | None = None
    openai_api_version: str = "2025-04-01-preview"
    # Azure serves a fine-tuned model under a deployment name: {"<model id>": "<deployment>"}
    azure_openai_deployments: dict[str, str] = {}
    # Base models offered for training; empty means every model in bot/catalog.py the provider lists.
    finetune_base_models: Annotated[list[str], NoDecode] = []
    # Last day each base model can be trained, over the provider's and its published schedule:
    # {"model": "2027-01-06"} anywhere, or {"model@azure": "2027-04-14"} at one provider only.
    finetune_training_retirements: dict[str, date] = {}
    # The day a model (a base, for all its fine-tunes, or one fine-tune) stops answering, keyed the same way.
    finetune_inference_retirements: dict[str, date] = {}
    finetune_uploads_threshold_mb: int = 100
    # Context window per base model, over bot/catalog.py's: {"gpt-4o-mini-2024-07-18": 128000}
    finetune_context_windows: dict[str, int] = {}
    # Longest answer asked of a model in chat; the rest of the window holds the thread's history.
    finetune_chat_max_tokens: int = 1024

    # Team rules: Slack user ids (U…) or user-group ids (S…); empty trainers means everyone may train.
    finetune_trainers: Annotated[list[str], NoDecode] = []
    finetune_admins: Annotated[list[str], NoDecode] = []
    finetune_monthly_budget_usd: float | None = None
    finetune_approval_threshold_usd: float | None = None
    finetune_approval_channel: str | None = None

    finetune_poll_seconds: int = 30
    finetune_dm_on_finish: bool = False

    # `finetune-bot validate` reads these two and the training prices without pydantic: bot/validation_settings.py
    finetune_default_model: str = DEFAULT_MODEL
    finetune_max_file_mb: int = DEFAULT_MAX_FILE_MB
    # USD per 1M training tokens, merged over bot/catalog.py's table: {"gpt-4o-mini-2024-07-18": 3.0}
    finetune_training_prices: dict[str, float] = {}
    # USD per 1M (input, output) tokens when a model answers, over bot/catalog.py's table; the key is a
    # model id, or ``ft:<base>`` for every fine-tune of a base: {"ft:gpt-4o-mini-2024-07-18": [0.3, 1.2]}
    finetune_inference_prices: dict[str, tuple[float, float]] = {}
    # USD per hour a deployed fine-tune costs where serving is billed by the hour (Azure), over
    # bot/catalog.py's: keyed by base model, or base@provider: {"gpt-4o-mini-2024-07-18@azure": 1.7}
    finetune_hosting_prices: dict[str, float] = {}
    # Evaluations: requests in flight at once, examples taken from a dataset at most, and an optional
    # judge model that compares the two answers head to head (off when unset; it costs a request more).
    finetune_eval_concurrency: int = Field(default=4, ge=1, le=64)
    finetune_eval_max_examples: int = Field(default=500, ge=1, le=10_000)
    finetune_eval_judge_model: str | None = None

    finetune_data_dir: Path = Path("data")
    database_url: str | None = None
    port: int = 3000
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # json: one object a line with a request id, for log collectors; text: for a terminal.
    log_format: Literal["json", "text"] = "json"
    # On SIGTERM: how long in-flight work may take to finish before it is cut off (its leases are freed).
    shutdown_grace_seconds: float = Field(default=20.0, ge=0, le=600)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("finetune_trainers", "finetune_admins", "finetune_base_models", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        """Accept ``U1,U2`` as well as JSON lists."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    @field_validator(
        "slack_bot_token",
        "slack_app_token",
        "slack_signing_secret",
        "slack_client_secret",
        "openai_api_key",
        "azure_openai_api_key",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        for name in self.finetune_providers:
            if not PROVIDER_NAME.match(name):
                raise ValueError(
                    f"FINETUNE_PROVIDERS: {name!r} is not a provider name: use lower-case letters, digits and "
                    "dashes, at most 32"
                )
        if self.finetune_default_provider and self.finetune_default_provider not in self.provider_configs():
            raise ValueError(
                f"FINETUNE_DEFAULT_PROVIDER={self.finetune_default_provider} is none of the configured providers "
                f"({', '.join(self.provider_configs())})"
            )
        if self.slack_bot_token and not self.slack_bot_token.get_secret_value().startswith("xoxb-"):
            raise ValueError(
                "SLACK_BOT_TOKEN must be a bot token starting with xoxb- "
                "(Slack app settings → OAuth & Permissions → Bot User OAuth Token)"
            )
        if self.slack_app_token and not self.slack_app_token.get_secret_value().startswith("xapp-"):
            raise ValueError(
                "SLACK_APP_TOKEN must be an app-level token starting with xapp- with the "
                "connections:write scope (Slack app settings → Basic Information → App-Level Tokens)"
            )
        if self.finetune_approval_threshold_usd is not None and not self.finetune_approval_channel:
            raise ValueError(
                "FINETUNE_APPROVAL_THRESHOLD_USD is set but FINETUNE_APPROVAL_CHANNEL is not: set the channel "
                "(C…) where admins approve jobs"
            )
        if self.finetune_monthly_budget_usd is not None and not self.finetune_approval_channel:
            raise ValueError(
                "FINETUNE_MONTHLY_BUDGET_USD is set but FINETUNE_APPROVAL_CHANNEL is not: set the channel "
                "(C…) where admins approve jobs over budget"
            )
        if self.finetune_poll_seconds < 1:
            raise ValueError("FINETUNE_POLL_SECONDS must be at least 1")
        if self.finetune_max_file_mb < 1:
            raise ValueError("FINETUNE_MAX_FILE_MB must be at least 1")
        if not 0 < self.port < 65536:
            raise ValueError("PORT must be between 1 and 65535")
        return self

    @property
    def admins(self) -> set[str]:
        return set(self.finetune_admins)

    @property
    def max_file_bytes(self) -> int:
        return self.finetune_max_file_mb * 1024 * 1024

    @property
    def sqlite_default_url(self) -> str:
        return f"sqlite+aiosqlite:///{(self.finetune_data_dir / 'finetune-bot.db').resolve()}"

    @property
    def effective_database_url(self) -> str:
        """DATABASE_URL, with plain driver names upgraded to their async drivers."""
        url = self.database_url or self.sqlite_default_url
        for plain, async_driver in (
            ("postgresql://", "postgresql+asyncpg://"),
            ("postgres://", "postgresql+asyncpg://"),
            ("sqlite://", "sqlite+aiosqlite://"),
        ):
            if url.startswith(plain):
                return async_driver + url[len(plain) :]
        return url

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    @property
    def has_slack_credentials(self) -> bool:
        installed = self.slack_multi_workspace or self.slack_bot_token is not None
        return installed and (self.slack_app_token is not None or self.slack_signing_secret is not None)

    def require_slack(self) -> None:
        """Raise ConfigError naming what `finetune-bot run` still needs from Slack."""
        if self.slack_multi_workspace:
            self._require_oauth()
        elif self.slack_bot_token is None:
            raise ConfigError(f"SLACK_BOT_TOKEN is not set: {SLACK_SETUP_HINT}, install it, copy the xoxb- token.")
        if self.slack_app_token is None and self.slack_signing_secret is None:
            raise ConfigError(
                "Neither SLACK_APP_TOKEN (Socket Mode) nor SLACK_SIGNING_SECRET (HTTP mode) is set: "
                f"{SLACK_SETUP_HINT}, then set one of them."
            )

    def _require_oauth(self) -> None:
        if self.slack_bot_token is not None:
            raise ConfigError(
                "SLACK_MULTI_WORKSPACE=true and SLACK_BOT_TOKEN are both set: each workspace's token comes from "
                "its installation, so unset SLACK_BOT_TOKEN (or turn multi-workspace off)."
            )
        if not self.slack_client_id or self.slack_client_secret is None:
            raise ConfigError(
                "SLACK_MULTI_WORKSPACE=true needs SLACK_CLIENT_ID and SLACK_CLIENT_SECRET "
                "(Slack app settings → Basic Information → App Credentials)."
            )
        if self.slack_signing_secret is None:
            raise ConfigError(
                "SLACK_MULTI_WORKSPACE=true needs SLACK_SIGNING_SECRET: people install the app through "
                "https://<your host>/slack/install, which Slack answers over HTTP."
            )

    def provider_configs(self) -> dict[str, ProviderConfig]:
        """Every configured provider by name: FINETUNE_PROVIDERS, else the one the single-provider settings make."""
        if self.finetune_providers:
            return dict(self.finetune_providers)
        kind = self.finetune_provider
        if kind == "azure":
            one = ProviderConfig(
                kind=kind,
                api_key=self.azure_openai_api_key,
                base_url=self.azure_openai_endpoint,
                api_version=self.openai_api_version,
                deployments=self.azure_openai_deployments,
                base_models=self.finetune_base_models,
            )
        else:
            one = ProviderConfig(
                kind=kind,
                api_key=self.openai_api_key,
                base_url=self.openai_base_url,
                base_models=self.finetune_base_models,
            )
        return {kind: one}

    @property
    def default_provider(self) -> str:
        return self.finetune_default_provider or next(iter(self.provider_configs()))

    def usable_providers(self) -> tuple[dict[str, ProviderConfig], list[str]]:
        """The providers that can be used, and one line for each that cannot (they are left out, and the
        others run: one misconfigured provider never stops them)."""
        usable, skipped = {}, []
        for name, config in self.provider_configs().items():
            problem = config.problem()
            if problem is None:
                usable[name] = config
            else:
                skipped.append(f"FINETUNE_PROVIDERS: provider {name} ({config.kind}) {problem}; it is left out.")
        return usable, skipped

    def require_provider(self) -> None:
        """Raise ConfigError naming what the fine-tuning provider still needs: the one provider of the
        single-provider settings, or the default one and at least one of FINETUNE_PROVIDERS."""
        if self.finetune_providers:
            usable, skipped = self.usable_providers()
            if self.default_provider not in usable:
                problem = next(line for line in skipped if f"provider {self.default_provider} " in line)
                raise ConfigError(problem.replace("; it is left out.", ": it is the default provider."))
            return
        if self.finetune_provider == "sandbox":
            return
        if self.finetune_provider == "azure":
            if not self.azure_openai_endpoint:
                raise ConfigError(
                    "FINETUNE_PROVIDER=azure needs AZURE_OPENAI_ENDPOINT, e.g. https://<resource>.openai.azure.com "
                    "(Azure portal → your Azure OpenAI resource → Keys and Endpoint)."
                )
            if self.azure_openai_api_key is None:
                raise ConfigError(
                    "FINETUNE_PROVIDER=azure needs AZURE_OPENAI_API_KEY (Azure portal → Keys and Endpoint)."
                )
            return
        if self.finetune_provider == "compatible" and not self.openai_base_url:
            raise ConfigError(
                "FINETUNE_PROVIDER=compatible needs OPENAI_BASE_URL: set it to the host's "
                "OpenAI-compatible API root, e.g. https://host.example/v1."
            )
        if self.openai_api_key is None:
            raise ConfigError(
                f"OPENAI_API_KEY is not set for FINETUNE_PROVIDER={self.finetune_provider}: create a key at "
                "https://platform.openai.com/api-keys, or set FINETUNE_PROVIDER=sandbox to try the bot offline."
            )


def load_settings(**overrides: object) -> Settings:
    """Read the environment (and .env); turn any invalid value into one ConfigError line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise ConfigError(_one_line(error)) from None
    except SettingsError as error:
        # Raised for a value that should be JSON and is not; its text names the field in lower case.
        match = re.search(r'field "(\w+)"', str(error))
        variable = match.group(1).upper() if match else "a setting"
        raise ConfigError(f"{variable} is not valid JSON; {FIX}.") from None


def _one_line(error: ValidationError) -> str:
    first = error.errors()[0]
    if first["loc"]:
        variable = str(first["loc"][0]).upper()
        shown = "" if variable.endswith(SECRET_SUFFIXES) else f" (got {first.get('input')!r})"
        return f"{variable}: {first['msg']}{shown}; {FIX}."
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{message}."
