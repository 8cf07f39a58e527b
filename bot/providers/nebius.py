"""Nebius Token Factory's deployments (providers.md §1.2): a fine-tune answers only once served under a
name of its own, ``POST /v0/models {name, base_model, source}`` with ``source`` = ``<job>:<checkpoint>``,
then ``GET /v0/models/{name}`` until active or error. Beside the OpenAI-compatible API, through the same
SDK client (its key, retries and transport)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast
from urllib.parse import quote

from openai import AsyncOpenAI

from bot.providers.openai_wire import nebius_deployment
from bot.providers.types import DeploymentPhase, DeploymentState, ProviderError, ProviderErrorKind

Call = Callable[..., Awaitable[Any]]


class NebiusDeployments:
    """``call`` is the adapter's: every failure comes out as a ProviderError, every outcome is counted."""

    def __init__(self, client: AsyncOpenAI, call: Call) -> None:
        self._client = client
        self._call = call

    def _models(self, name: str = "") -> str:
        """``/v0/models`` beside the API root ``…/v1``."""
        root = str(self._client.base_url).rstrip("/").removesuffix("/v1")
        return f"{root}/v0/models" + (f"/{quote(name, safe='')}" if name else "")

    async def deploy(self, *, name: str, base_model: str, source: str) -> DeploymentState:
        body = {"name": name, "base_model": base_model, "source": source}
        created = self._client.post(self._models(), body=body, cast_to=object)
        return cast(DeploymentState, await self._call(created, read=lambda answer: nebius_deployment(name, answer)))

    async def state(self, name: str) -> DeploymentState:
        asked = self._client.get(self._models(name), cast_to=object)
        try:
            return cast(DeploymentState, await self._call(asked, read=lambda answer: nebius_deployment(name, answer)))
        except ProviderError as error:
            if error.kind == ProviderErrorKind.NOT_FOUND:
                return DeploymentState(name, DeploymentPhase.GONE)
            raise

    async def undeploy(self, name: str) -> None:
        try:
            await self._call(self._client.delete(self._models(name), cast_to=object))
        except ProviderError as error:
            if error.kind != ProviderErrorKind.NOT_FOUND:
                raise
