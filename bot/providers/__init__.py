"""Fine-tuning providers behind one seam. Only this package imports ``openai``.

``build_provider(settings)`` returns the configured variant of the OpenAI-compatible adapter:
OpenAI itself, Azure OpenAI, any OpenAI-compatible host, or the built-in sandbox emulator.
"""

from bot.providers.types import (
    BaseModelInfo,
    Checkpoint,
    FineTuneProvider,
    JobRequest,
    ProviderError,
    ProviderErrorKind,
    ProviderEvent,
    ProviderJob,
)

__all__ = [
    "BaseModelInfo",
    "Checkpoint",
    "FineTuneProvider",
    "JobRequest",
    "ProviderError",
    "ProviderErrorKind",
    "ProviderEvent",
    "ProviderJob",
]
