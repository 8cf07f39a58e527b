"""What the bot knows about base models: tokenizer, per-example limit, price and retirement dates.

Providers report some of this (OpenAI's ``shutdown_date``); the rest is published elsewhere, so it
lives here as data that settings can override (prices change; see ../shared/reference/openai.md §6).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

# OpenAI stops all new fine-tuning jobs on this day (providers.md §0).
OPENAI_TRAINING_ENDS = date(2027, 1, 6)


@dataclass(frozen=True)
class ModelInfo:
    id: str
    encoding: str
    example_token_limit: int
    training_price_per_million: float | None
    methods: tuple[str, ...] = ("supervised",)
    inference_retires: date | None = None
    context_window: int = 128_000


CATALOG: dict[str, ModelInfo] = {
    info.id: info
    for info in (
        ModelInfo("gpt-4o-mini-2024-07-18", "o200k_base", 65_536, 3.00, ("supervised", "dpo"), date(2027, 1, 14)),
        ModelInfo("gpt-4o-2024-08-06", "o200k_base", 65_536, 25.00, ("supervised", "dpo"), date(2027, 1, 14)),
        ModelInfo(
            "gpt-4.1-2025-04-14", "o200k_base", 65_536, 25.00, ("supervised", "dpo"), date(2027, 1, 14), 1_047_576
        ),
        ModelInfo(
            "gpt-4.1-mini-2025-04-14", "o200k_base", 65_536, 5.00, ("supervised", "dpo"), date(2027, 1, 14), 1_047_576
        ),
        ModelInfo(
            "gpt-4.1-nano-2025-04-14", "o200k_base", 65_536, 1.50, ("supervised", "dpo"), date(2026, 10, 23), 1_047_576
        ),
        ModelInfo("gpt-3.5-turbo-0125", "cl100k_base", 16_385, 8.00, ("supervised",), date(2026, 10, 23), 16_385),
        ModelInfo("gpt-3.5-turbo-1106", "cl100k_base", 16_385, 8.00, ("supervised",), date(2026, 10, 23), 16_385),
        ModelInfo("gpt-3.5-turbo-0613", "cl100k_base", 4_096, 8.00, ("supervised",), date(2026, 10, 23), 4_096),
        ModelInfo("davinci-002", "cl100k_base", 16_384, 6.00, ("supervised",), context_window=16_384),
        ModelInfo("babbage-002", "cl100k_base", 16_384, 0.40, ("supervised",), context_window=16_384),
    )
}

ALIASES = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "gpt-3.5-turbo": "gpt-3.5-turbo-0125",
}

COMPLETION_ONLY_MODELS = ("davinci-002", "babbage-002")
O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")


def base_model_id(model: str) -> str:
    """The dated base model behind an alias, a fine-tuned id (``ft:base:org:suffix:id``) or an Azure ``base.ft-…``."""
    if model.startswith("ft:"):
        model = model.split(":")[1]
    elif ".ft-" in model:
        model = model.split(".ft-")[0]
    return ALIASES.get(model, model)


def lookup(model: str) -> ModelInfo | None:
    return CATALOG.get(base_model_id(model))


def encoding_for(model: str) -> str:
    """o200k_base for the gpt-4o/4.1 families and newer, cl100k_base for older models.

    tiktoken maps ``ft:gpt-4.1…`` to cl100k_base by mistake (openai.md §5); resolving the base first avoids it.
    """
    info = lookup(model)
    if info is not None:
        return info.encoding
    base = base_model_id(model)
    return "o200k_base" if base.startswith(O200K_PREFIXES) else "cl100k_base"


def is_completion_model(model: str) -> bool:
    return base_model_id(model) in COMPLETION_ONLY_MODELS
