"""Each provider's calendar: the last day a base model can be trained there, and the day a model stops
answering there. OpenAI's dates are OpenAI's only.

For each date, the first that is known wins: the settings (for this provider and model, then for the
model anywhere), what the provider's own API reports (OpenAI's ``shutdown_date``, Azure's
``deprecation``), then the schedule the provider published (providers.md §0 and §1.1). Other hosts
publish none, and the built-in sandbox follows no calendar, so it trains and answers on any date.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from bot.models import catalog

# OpenAI accepts no new fine-tuning jobs from this day (providers.md §0).
OPENAI_TRAINING_ENDS = date(2027, 1, 6)

# Azure OpenAI's published schedule for fine-tuning (providers.md §1.1): (training retires no earlier
# than, deployments of the fine-tunes retire). The models API's ``deprecation`` goes first when it has it.
AZURE_SCHEDULE: dict[str, tuple[date, date]] = {
    "gpt-4.1-2025-04-14": (date(2027, 4, 14), date(2027, 10, 14)),
    "gpt-4.1-mini-2025-04-14": (date(2027, 4, 14), date(2027, 10, 14)),
    "gpt-4.1-nano-2025-04-14": (date(2027, 4, 14), date(2027, 10, 14)),
    "gpt-4o-2024-08-06": (date(2027, 4, 1), date(2027, 10, 1)),
    "gpt-4o-mini-2024-07-18": (date(2027, 4, 1), date(2027, 10, 1)),
}


@dataclass(frozen=True)
class Calendar:
    """The dates of one provider. ``kind`` is what the host is (openai, azure, compatible, sandbox);
    ``name`` is how the settings key its overrides (``model@name``)."""

    kind: str
    name: str
    training_overrides: dict[str, date] = field(default_factory=dict)
    inference_overrides: dict[str, date] = field(default_factory=dict)

    def _override(self, table: dict[str, date], model: str) -> date | None:
        base = catalog.base_model_id(model)
        for key in (f"{model}@{self.name}", f"{base}@{self.name}", model, base):
            if key in table:
                return table[key]
        return None

    def published_inference(self, model: str) -> date | None:
        base = catalog.base_model_id(model)
        if self.kind == "openai":
            info = catalog.lookup(model)
            return info.inference_retires if info else None
        if self.kind == "azure" and base in AZURE_SCHEDULE:
            return AZURE_SCHEDULE[base][1]
        return None

    def inference_retires(self, model: str, *, reported: date | None = None) -> date | None:
        """The day ``model`` (a base or one of its fine-tunes) stops answering at this provider."""
        return self._override(self.inference_overrides, model) or reported or self.published_inference(model)

    def training_retires(
        self, model: str, *, reported: date | None = None, inference: date | None = None
    ) -> date | None:
        """The last day ``model`` can be trained here: never after the day it stops answering."""
        configured = self._override(self.training_overrides, model)
        if configured is not None:
            return configured
        candidates = [day for day in (reported, inference) if day is not None]
        if self.kind == "openai":
            candidates.append(OPENAI_TRAINING_ENDS)
        elif self.kind == "azure" and reported is None and catalog.base_model_id(model) in AZURE_SCHEDULE:
            candidates.append(AZURE_SCHEDULE[catalog.base_model_id(model)][0])
        return min(candidates) if candidates else None
