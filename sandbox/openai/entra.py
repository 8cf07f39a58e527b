"""Entra ID as Azure OpenAI and Azure's management API take it, for the emulator:

- a managed identity's token endpoint as App Service serves it, which azure-identity's
  DefaultAzureCredential calls when the environment has ``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER``:
  ``GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=…`` with the secret in ``X-IDENTITY-HEADER``,
  answering ``{access_token, expires_on, resource, token_type, client_id}``;
- access tokens that are JWTs carrying their audience (``aud``), each API taking only its own: the data
  plane (``/openai/…``) https://cognitiveservices.azure.com, the management API (``/subscriptions/…``)
  https://management.azure.com.

Lifetimes are reported but not enforced: azure-identity refreshes by the wall clock, and tests move the
emulator's clock by days.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.openai.simulation import OpenAIState

TOKEN_PATH = "/msi/token"
API_VERSION = "2019-08-01"
DATA_PLANE = "https://cognitiveservices.azure.com"
MANAGEMENT = "https://management.azure.com"
TOKEN_SECONDS = 24 * 3600
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def issue(state: OpenAIState, *, secret: str | None, api_version: str | None, resource: str | None) -> tuple[Any, int]:
    """A token for ``resource`` to whoever holds the identity's secret header, or the endpoint's refusal."""
    if secret != state.identity_header:
        return {"statusCode": 401, "message": "Unauthorized: X-IDENTITY-HEADER is missing or wrong."}, 401
    if api_version != API_VERSION:
        return {"statusCode": 400, "message": f"api-version must be {API_VERSION}."}, 400
    resource = (resource or "").rstrip("/")
    if resource not in (DATA_PLANE, MANAGEMENT):
        return {
            "error": "invalid_resource",
            "error_description": f"AADSTS500011: The resource principal named {resource} was not found in the "
            f"tenant named {TENANT}.",
        }, 400
    expires_on = int(state.now()) + TOKEN_SECONDS
    claims = {
        "aud": resource,
        "iss": f"https://sts.windows.net/{TENANT}/",
        "oid": state.identity_client_id,
        "exp": expires_on,
    }
    token = ".".join(
        _base64url(part)
        for part in (
            json.dumps({"typ": "JWT", "alg": "RS256"}).encode(),
            json.dumps(claims).encode(),
            secrets.token_bytes(32),
        )
    )
    state.entra_tokens[token] = resource
    answer = {
        "access_token": token,
        "expires_on": str(expires_on),
        "resource": resource,
        "token_type": "Bearer",
        "client_id": state.identity_client_id,
    }
    return answer, 200


def audience(state: OpenAIState, bearer: str | None) -> str | None:
    """The audience of a token this identity endpoint issued, or None for anything else."""
    return state.entra_tokens.get(bearer) if bearer else None


def _base64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
