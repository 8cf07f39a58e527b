"""What the bot knows about base models: tokenizer, per-example limit, price and retirement dates.

Providers report some of this (OpenAI's ``shutdown_date``); the rest is published elsewhere, so it
lives here as data that settings can override (prices change; see ../shared/reference/openai.md §6).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


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
        # Open-weight bases at Nebius (providers.md §1.2): no published training price here, so the estimate
        # says "unknown" unless FINETUNE_TRAINING_PRICES has one; cl100k_base approximates Llama's tokenizer.
        ModelInfo("meta-llama/Llama-3.1-8B-Instruct", "cl100k_base", 131_072, None, context_window=131_072),
        ModelInfo("meta-llama/Llama-3.3-70B-Instruct", "cl100k_base", 131_072, None, context_window=131_072),
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
# USD per 1M tokens, (input, output), for the base model and for its fine-tunes. Unconfirmed figures
# (../shared/reference/openai.md §6): settings override them, and a model missing here costs "unknown".
INFERENCE_PRICES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "gpt-4o-mini-2024-07-18": ((0.15, 0.60), (0.30, 1.20)),
    "gpt-4o-2024-08-06": ((2.50, 10.00), (3.75, 15.00)),
    "gpt-4.1-2025-04-14": ((2.00, 8.00), (3.00, 12.00)),
    "gpt-4.1-mini-2025-04-14": ((0.40, 1.60), (0.80, 3.20)),
    "gpt-4.1-nano-2025-04-14": ((0.10, 0.40), (0.20, 0.80)),
    "gpt-3.5-turbo-0125": ((0.50, 1.50), (3.00, 6.00)),
    "davinci-002": ((2.00, 2.00), (12.00, 12.00)),
    "babbage-002": ((0.40, 0.40), (1.60, 1.60)),
}
# USD per hour a deployed fine-tune of each base costs at Azure OpenAI (standard deployment), whether or
# not it answers anything. Unconfirmed figures (providers.md §1.1 says "an hourly hosting fee"): settings
# override them (FINETUNE_HOSTING_PRICES), and a missing one is shown as unknown.
HOSTING_PRICES_PER_HOUR: dict[str, float] = {
    "gpt-4o-mini-2024-07-18": 1.70,
    "gpt-4o-2024-08-06": 1.70,
    "gpt-4.1-2025-04-14": 1.70,
    "gpt-4.1-mini-2025-04-14": 1.70,
    "gpt-4.1-nano-2025-04-14": 1.70,
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


def is_fine_tuned(model: str) -> bool:
    return model.startswith("ft:") or ".ft-" in model


def inference_price(model: str, overrides: dict[str, tuple[float, float]]) -> tuple[float, float] | None:
    """USD per 1M (input, output) tokens of a model: the setting for the exact id, for ``ft:<base>``
    (every fine-tune of that base) or for the base id, else the catalog's; None when nobody knows."""
    base = base_model_id(model)
    tuned = is_fine_tuned(model)
    for key in (model, f"ft:{base}" if tuned else base):
        if key in overrides:
            return overrides[key]
    known = INFERENCE_PRICES.get(base)
    if known is None:
        return None
    return known[1] if tuned else known[0]
