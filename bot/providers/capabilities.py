"""What each kind of host can do, where hosts that speak OpenAI's fine-tuning API still differ
(providers.md §1.1, §1.2, §5.2). The Train form, the poller, the idempotent create and the model's
buttons read these instead of asking which host they are on.

Per base model, the methods it trains with are in ``BaseModelInfo.methods``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.settings import ProviderConfig


class LearningRateStyle(StrEnum):
    # OpenAI's learning_rate_multiplier: a factor on the host's own rate for that model and data.
    MULTIPLIER = "multiplier"
    # The rate itself (Nebius, Together and a self-hosted trainer), e.g. 2e-5.
    ABSOLUTE = "absolute"


class EventPaging(StrEnum):
    ID_CURSOR = "id"  # `after=<event id>`, newest first (OpenAI)
    HASH = "hash"  # the whole list each time, each event with a hash to deduplicate on (Together)
    NONE = "none"  # no events at all: progress comes from the job's status alone


class ServingBilling(StrEnum):
    PER_TOKEN = "per_token"  # nothing to pay while a model waits (OpenAI, Nebius serverless LoRA)
    HOURLY = "hourly"  # a deployment costs by the hour while it exists (Azure)


@dataclass(frozen=True)
class Capabilities:
    learning_rate: LearningRateStyle
    # How the weights are trained: "full" (whatever the host does behind a managed API) or "lora".
    adapters: tuple[str, ...]
    # Hyperparameters the host takes beyond epochs, batch size, learning rate and DPO's beta.
    extra_hyperparameters: tuple[str, ...]
    event_paging: EventPaging
    # Whether the job list honours `metadata[...]`; the bot checks the request id itself either way.
    metadata_search: bool
    # Whether a model must be deployed (and so can be stopped serving) before anyone chats with it.
    needs_deploy: bool
    pause_resume: bool
    downloadable_weights: bool
    serving_billing: ServingBilling
    suffix_limit: int = 64

    @property
    def learning_rate_field(self) -> str:
        """The Train form's and the stored hyperparameters' name for the learning rate."""
        return "learning_rate" if self.learning_rate is LearningRateStyle.ABSOLUTE else "learning_rate_multiplier"

    @property
    def lora_rank(self) -> bool:
        return "lora_r" in self.extra_hyperparameters


OPENAI = Capabilities(
    learning_rate=LearningRateStyle.MULTIPLIER,
    adapters=("full",),
    extra_hyperparameters=(),
    event_paging=EventPaging.ID_CURSOR,
    metadata_search=True,
    needs_deploy=False,
    pause_resume=True,
    downloadable_weights=False,
    serving_billing=ServingBilling.PER_TOKEN,
)

CAPABILITIES: dict[str, Capabilities] = {
    "openai": OPENAI,
    "sandbox": OPENAI,
    # Azure: pause/resume is not documented for it (providers.md §5.2), fine-tunes answer only once deployed,
    # and a deployment is billed by the hour; a suffix takes at most 18 characters.
    "azure": replace(
        OPENAI, needs_deploy=True, pause_resume=False, serving_billing=ServingBilling.HOURLY, suffix_limit=18
    ),
    # Nebius Token Factory: LoRA with top-level hyperparameters and an absolute rate, downloadable
    # adapters, a serverless deployment per model before chat (providers.md §1.2).
    "nebius": replace(
        OPENAI,
        learning_rate=LearningRateStyle.ABSOLUTE,
        adapters=("lora",),
        extra_hyperparameters=("lora_r", "warmup_ratio", "weight_decay"),
        metadata_search=False,
        needs_deploy=True,
        pause_resume=False,
        downloadable_weights=True,
    ),
    # Any other OpenAI-compatible host: OpenAI's shape, but nothing beyond the basics taken for granted.
    "compatible": replace(OPENAI, metadata_search=False, pause_resume=False),
}


PROVIDER_LABELS = {
    "openai": "OpenAI",
    "azure": "Azure OpenAI",
    "nebius": "Nebius Token Factory",
    "compatible": "the OpenAI-compatible host",
    "sandbox": "the sandbox",
}


def provider_label(name: str, config: ProviderConfig) -> str:
    """The provider as people name it in messages: its configured label, else its kind's."""
    return config.label or PROVIDER_LABELS.get(config.kind, name)
