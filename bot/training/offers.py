"""What can be trained where: every configured provider's base models, each with its own dates.

A choice names a model at the default provider by its id, and a model at another provider as
``model@provider``, so one select (grouped by provider) picks both at once, and
`/finetune train #3 model=gpt-4o-2024-08-06@azure` says the same.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from bot.models import catalog
from bot.mrkdwn import escape
from bot.providers import BaseModelInfo, ProviderError
from bot.providers.capabilities import Capabilities
from bot.services import Services

logger = logging.getLogger(__name__)

# How long the Train form waits for a provider's list of models before leaving that provider out.
OFFER_WAIT_SECONDS = 1.5


@dataclass(frozen=True)
class Offer:
    provider: str
    kind: str  # what the provider is (openai, azure, nebius, compatible, sandbox)
    label: str  # the provider as people see it named
    model: BaseModelInfo
    value: str  # the choice that picks it
    capabilities: Capabilities


def choice_value(services: Services, model: str, provider: str) -> str:
    return model if provider == services.providers.default_name else f"{model}@{provider}"


def split_choice(services: Services, value: str) -> tuple[str, str]:
    """(model id, provider name) of a choice; a bare id (or alias) is at the default provider."""
    model, _, provider = value.partition("@")
    return catalog.ALIASES.get(model, model), provider or services.providers.default_name


async def offers(services: Services) -> tuple[list[Offer], dict[str, Offer]]:
    """The models that can be trained today, in provider order, and every listed one by its choice.

    A provider that cannot list its models now is left out (and logged), so the others stay offered;
    when none can, the last one's refusal is raised."""
    today = services.clock.now().date()
    providers = list(services.providers)
    # All at once, and none waited for long: the form must open within Slack's 3-second trigger.
    answers = await asyncio.gather(
        *(asyncio.wait_for(services.base_models(p.name), OFFER_WAIT_SECONDS) for p in providers),
        return_exceptions=True,
    )
    listed: list[Offer] = []
    failure: BaseException | None = None
    for provider, models in zip(providers, answers, strict=True):
        if isinstance(models, BaseException):
            if not isinstance(models, ProviderError | TimeoutError):
                raise models
            logger.warning("%s left out of the Train form: %s", provider.name, models)
            failure = models
            continue
        listed += [
            Offer(
                provider.name,
                provider.kind,
                provider.label,
                m,
                choice_value(services, m.id, provider.name),
                provider.capabilities,
            )
            for m in models
        ]
    if not listed and failure is not None:
        raise failure
    return [o for o in listed if o.model.trainable_on(today)], {o.value: o for o in listed}


def retired_text(services: Services, offer: Offer | None, wanted: str, trainable: list[Offer]) -> str:
    """Why ``wanted`` cannot be trained, naming the provider it was asked at and the other configured
    providers that can still train (``trainable``), never the refusing one again."""
    today = services.clock.now().date()
    model_id, provider = split_choice(services, wanted)
    label = offer.label if offer is not None else services.providers.label_of(provider)
    if offer is None:
        return f"`{escape(model_id)}` cannot be fine-tuned with {label}. Pick one of the models in the Train… dialog."
    model = offer.model
    shutdown = ""
    if model.inference_retires:
        verb = "stopped" if today >= model.inference_retires else "stop"
        shutdown = f", and its fine-tunes {verb} answering there on {model.inference_retires:%Y-%m-%d}"
    return (
        f"`{escape(model.id)}` can no longer be trained with {label}: training ended on "
        f"{model.training_retires:%Y-%m-%d} (today is {today:%Y-%m-%d}){shutdown}. {elsewhere(offer, trainable)}"
    )


def elsewhere(offer: Offer, trainable: list[Offer]) -> str:
    others = list(dict.fromkeys(o.label for o in trainable if o.provider != offer.provider))
    if others:
        return f"Pick a model at {' or '.join(others)} in the Train… dialog."
    return "An admin can add a provider that still trains it (README, Providers)."
