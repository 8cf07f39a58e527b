"""The three settings `finetune-bot validate` reads, read without pydantic.

The command line validates files on laptops and in CI pipelines and should answer at once, but
importing pydantic-settings for the whole ``Settings`` costs about 0.25 s and 22 MiB in every
process (and the validator forks one per core): more than validating a small file. These variables
are read the way ``Settings`` reads them (the environment over ``.env``, names in any case, the
price table as JSON), with the same defaults, and tests/unit/test_settings.py holds the two readers
to the same answers.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bot.errors import ConfigError

DEFAULT_MODEL = "gpt-4o-mini-2024-07-18"
DEFAULT_MAX_FILE_MB = 512
INTEGER = re.compile(r"[+-]?\d+(?:\.0*)?")
FIX = "fix it in the environment or .env"


@dataclass(frozen=True)
class ValidationSettings:
    default_model: str = DEFAULT_MODEL
    max_file_mb: int = DEFAULT_MAX_FILE_MB
    training_prices: dict[str, float] = field(default_factory=dict)

    @property
    def max_file_bytes(self) -> int:
        return self.max_file_mb * 1024 * 1024


def load_validation_settings(
    environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")
) -> ValidationSettings:
    """FINETUNE_DEFAULT_MODEL, FINETUNE_MAX_FILE_MB and FINETUNE_TRAINING_PRICES; bad values raise ConfigError."""
    values: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        from dotenv import dotenv_values

        values.update({name.lower(): value for name, value in dotenv_values(env_file).items() if value is not None})
    values.update({name.lower(): value for name, value in (os.environ if environ is None else environ).items()})
    return ValidationSettings(
        default_model=values.get("finetune_default_model", DEFAULT_MODEL),
        max_file_mb=_max_file_mb(values.get("finetune_max_file_mb")),
        training_prices=_prices(values.get("finetune_training_prices")),
    )


def _max_file_mb(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_MAX_FILE_MB
    # pydantic's lax integers: surrounding spaces and a zero fraction ("12.0") are fine.
    if not INTEGER.fullmatch(raw.strip()):
        raise ConfigError(f"FINETUNE_MAX_FILE_MB: Input should be a valid integer (got {raw!r}); {FIX}.")
    megabytes = int(raw.strip().partition(".")[0])
    if megabytes < 1:
        raise ConfigError("FINETUNE_MAX_FILE_MB must be at least 1.")
    return megabytes


def _prices(raw: str | None) -> dict[str, float]:
    if raw is None:
        return {}
    try:
        table = json.loads(raw)
    except ValueError:
        raise ConfigError(f"FINETUNE_TRAINING_PRICES is not valid JSON; {FIX}.") from None
    try:
        if not isinstance(table, dict):
            raise TypeError(table)
        # float() takes what pydantic's lax mode takes for a price: numbers and numeric strings.
        return {str(model): float(price) for model, price in table.items()}
    except (TypeError, ValueError):
        raise ConfigError(
            f'FINETUNE_TRAINING_PRICES: give USD per 1M training tokens as {{"model": price}} (got {raw!r}); {FIX}.'
        ) from None
