"""Each provider's calendar: OpenAI's dates on OpenAI only, Azure's own, none elsewhere, settings over all."""

from __future__ import annotations

from datetime import date

import pytest

from bot.providers.calendar import OPENAI_TRAINING_ENDS, Calendar

MINI = "gpt-4o-mini-2024-07-18"
TUNED_ON_OPENAI = f"ft:{MINI}:acme::abc123"
TUNED_ON_AZURE = f"{MINI}.ft-0123456789abcdef0123456789abcdef"


def test_openai_stops_training_on_2027_01_06_and_answering_on_2027_01_14() -> None:
    openai = Calendar(kind="openai", name="openai")
    assert openai.inference_retires(MINI) == date(2027, 1, 14)
    assert openai.inference_retires(TUNED_ON_OPENAI) == date(2027, 1, 14), "a fine-tune follows its base"
    assert openai.training_retires(MINI, inference=date(2027, 1, 14)) == OPENAI_TRAINING_ENDS == date(2027, 1, 6)
    nano = "gpt-4.1-nano-2025-04-14"
    assert openai.training_retires(nano, inference=openai.inference_retires(nano)) == date(2026, 10, 23), (
        "never trained after it stops answering"
    )


def test_azure_uses_what_its_api_reports_then_its_published_schedule() -> None:
    azure = Calendar(kind="azure", name="azure")
    assert azure.inference_retires(TUNED_ON_AZURE) == date(2027, 10, 1)
    assert azure.training_retires(MINI, inference=date(2027, 10, 1)) == date(2027, 4, 1)
    assert azure.training_retires("gpt-4.1-2025-04-14") == date(2027, 4, 14)
    reported = azure.training_retires(MINI, reported=date(2027, 6, 30), inference=date(2027, 10, 1))
    assert reported == date(2027, 6, 30), "the models API's deprecation.fine_tune first"
    assert azure.inference_retires(MINI, reported=date(2027, 12, 1)) == date(2027, 12, 1)
    assert azure.training_retires(MINI) != OPENAI_TRAINING_ENDS


@pytest.mark.parametrize("kind", ["compatible", "sandbox"])
def test_other_hosts_have_no_dates_unless_configured(kind: str) -> None:
    host = Calendar(kind=kind, name=kind)
    assert host.inference_retires(MINI) is None and host.training_retires(MINI) is None
    assert host.inference_retires(MINI, reported=date(2027, 3, 1)) == date(2027, 3, 1)


def test_settings_override_per_provider_then_per_model() -> None:
    overrides = {f"{MINI}@azure": date(2027, 2, 1), MINI: date(2027, 3, 1)}
    azure = Calendar(kind="azure", name="azure", training_overrides=overrides, inference_overrides=overrides)
    nebius = Calendar(kind="compatible", name="nebius", training_overrides=overrides, inference_overrides=overrides)
    assert azure.training_retires(MINI, reported=date(2027, 4, 1)) == date(2027, 2, 1)
    assert nebius.training_retires(MINI) == date(2027, 3, 1)
    assert azure.inference_retires(TUNED_ON_AZURE, reported=date(2027, 10, 1)) == date(2027, 2, 1), (
        "a base's date covers its fine-tunes"
    )
    assert Calendar(kind="openai", name="openai").training_retires(MINI) == OPENAI_TRAINING_ENDS
