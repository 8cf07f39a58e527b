"""An OpenAI emulator over real HTTP: state (the account, on a virtual clock), simulation (how its models
train and answer) and server (the API as the SDK calls it)."""

from __future__ import annotations

from sandbox.openai.server import OpenAIEmulator, serve_forever
from sandbox.openai.simulation import OpenAIState
from sandbox.openai.state import (
    AZURE_MODELS,
    DEFAULT_MODELS,
    NEBIUS_MODELS,
    OPENAI_FINE_TUNING_CLOSES,
    SANDBOX_MODELS,
    ApiError,
    BaseModel,
    SandboxClock,
)

__all__ = [
    "AZURE_MODELS",
    "DEFAULT_MODELS",
    "NEBIUS_MODELS",
    "OPENAI_FINE_TUNING_CLOSES",
    "SANDBOX_MODELS",
    "ApiError",
    "BaseModel",
    "OpenAIEmulator",
    "OpenAIState",
    "SandboxClock",
    "serve_forever",
]
