"""Azure's management API for deployments (providers.md §1.1): a fine-tune answers at Azure only once
deployed, and deployments are made with an Entra ID token at management.azure.com, not with the API
key: ``PUT …/Microsoft.CognitiveServices/accounts/{account}/deployments/{name}``, then
``provisioningState`` polled until it is Succeeded or Failed. Plain HTTP on aiohttp.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import aiohttp

from bot.logging import redact
from bot.providers.openai_wire import azure_deployment, management_error
from bot.providers.types import DeploymentState, ProviderError, ProviderErrorKind
from bot.settings import ProviderConfig

ARM_API_VERSION = "2024-10-01"
ARM_SCOPE = "https://management.azure.com/.default"
DATA_PLANE_SCOPE = "https://cognitiveservices.azure.com/.default"


class EntraTokens:
    """Entra ID access tokens for one provider through azure-identity's DefaultAzureCredential (a managed
    identity, a service principal or workload identity in the environment, the Azure CLI …), made on first
    use. azure-identity is the optional [azure] extra; settings.ProviderConfig.problem says when it is missing.
    """

    def __init__(self, *, label: str) -> None:
        self.label = label
        self._credential: Any = None

    def provider(self, scope: str) -> Callable[[], Awaitable[str]]:
        """A token callable for the SDK (``azure_ad_token_provider``, or the v1 API's ``api_key``)."""

        async def token() -> str:
            return await self.token(scope)

        return token

    async def token(self, scope: str) -> str:
        if self._credential is None:
            try:
                identity = importlib.import_module("azure.identity.aio")
            except ImportError:
                raise self._refusal(
                    "Entra ID needs azure-identity, which is not installed (pip install 'finetune-bot[azure]')."
                ) from None
            self._credential = identity.DefaultAzureCredential()
        try:
            token = await self._credential.get_token(scope)
        except Exception as failure:  # azure.core's ClientAuthenticationError and its kin: the package is optional
            said = redact(str(failure)).strip().splitlines()
            raise self._refusal(
                f"Entra ID gave no token for {scope}: {said[0][:300] if said else type(failure).__name__}"
            ) from None
        return str(token.token)

    async def aclose(self) -> None:
        if self._credential is not None:
            await self._credential.close()

    def _refusal(self, message: str) -> ProviderError:
        error = ProviderError(ProviderErrorKind.ENTRA, message)
        error.provider_label = self.label
        return error


class AzureManagement:
    """Deployments in one Azure OpenAI account, with its own HTTP session and the provider's Entra tokens."""

    def __init__(
        self, config: ProviderConfig, *, label: str, entra: EntraTokens, observe: Callable[[str], None]
    ) -> None:
        self.config = config
        self.label = label
        self._entra = entra
        self._observe = observe
        self._http: aiohttp.ClientSession | None = None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def deploy(self, *, model: str, name: str) -> DeploymentState:
        resource: dict[str, Any] = {
            "sku": {"name": self.config.deployment_sku, "capacity": 1},
            "properties": {"model": {"format": "OpenAI", "name": model, "version": "1"}},
        }
        return azure_deployment(name, await self._management("PUT", name, resource))

    async def state(self, name: str) -> DeploymentState:
        return azure_deployment(name, await self._management("GET", name))

    async def undeploy(self, name: str) -> None:
        await self._management("DELETE", name)

    async def _management(self, method: str, name: str, body: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """One call to Azure's management API for deployment ``name``; None when it has no such deployment."""
        config = self.config
        url = (
            f"{config.management_url.rstrip('/')}/subscriptions/{config.subscription_id}/resourceGroups/"
            f"{config.resource_group}/providers/Microsoft.CognitiveServices/accounts/{config.account}/deployments/"
            f"{quote(name, safe='')}?api-version={ARM_API_VERSION}"
        )
        headers = {"Authorization": f"Bearer {await self._management_token()}"}
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        try:
            async with self._http.request(method, url, json=body, headers=headers) as response:
                text = await response.text()
                status = response.status
            answer = json.loads(text) if text.strip() else {}
            if not isinstance(answer, dict):
                raise ValueError("not a JSON object")
        except (aiohttp.ClientError, TimeoutError, ValueError) as failure:
            error = ProviderError(
                ProviderErrorKind.OUTAGE, f"Azure's management API did not answer: {failure}", ambiguous=True
            )
            error.provider_label = self.label
            self._observe(error.kind.value)
            raise error from None
        if status == 404 and method != "PUT":
            self._observe("ok")
            return None
        if status >= 400:
            error = management_error(status, answer)
            error.provider_label = self.label
            self._observe(error.kind.value)
            raise error
        self._observe("ok")
        return answer

    async def _management_token(self) -> str:
        """A bearer token for management.azure.com: the configured one, else Entra ID's."""
        if self.config.management_token is not None:
            return self.config.management_token.get_secret_value()
        try:
            return await self._entra.token(ARM_SCOPE)
        except ProviderError as error:
            self._observe(error.kind.value)
            raise
