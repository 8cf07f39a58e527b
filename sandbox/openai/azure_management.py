"""Azure's management API for deployments (providers.md §1.1), as the emulator enforces it:

- ``PUT/GET/DELETE /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/
  accounts/{account}/deployments/{name}?api-version=…`` with an Entra bearer token, never the API key;
- a PUT makes a deployment ``Creating``, then ``Succeeded`` a minute later, and only then does chat at
  ``/openai/deployments/{name}/…`` answer;
- a deployment nobody called for 15 days is deleted (the model stays).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sandbox.openai import entra
from sandbox.openai.state import ApiError

if TYPE_CHECKING:
    from sandbox.openai.simulation import OpenAIState

PROVISIONING_SECONDS = 60
IDLE_DELETE_SECONDS = 15 * 24 * 3600
SKUS = ("standard", "globalstandard", "developer")


@dataclass
class ArmDeployment:
    name: str
    model: str
    sku: str
    path: str
    created_at: int
    last_used: int
    provisioning_state: str = "Creating"

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.path,
            "type": "Microsoft.CognitiveServices/accounts/deployments",
            "name": self.name,
            "sku": {"name": self.sku, "capacity": 1},
            "properties": {
                "model": {"format": "OpenAI", "name": self.model, "version": "1"},
                "provisioningState": self.provisioning_state,
            },
        }


def authorize(state: OpenAIState, bearer: str | None, api_version: str | None) -> None:
    """An Entra token for management.azure.com: the fixed one a test hands the bot, or one the emulator's
    managed identity issued for this audience."""
    issued_for = entra.audience(state, bearer)
    if issued_for is not None and issued_for != entra.MANAGEMENT:
        raise ApiError(
            401,
            f"The access token has been obtained for wrong audience or resource '{issued_for}'. It should "
            f"exactly match with one of the allowed audiences '{entra.MANAGEMENT}/'.",
            code="InvalidAuthenticationTokenAudience",
        )
    if bearer is None or (bearer != state.management_token and issued_for is None):
        raise ApiError(
            401,
            "The access token is invalid: the management API takes an Entra ID access token.",
            code="InvalidAuthenticationToken",
        )
    if not api_version:
        raise ApiError(
            400,
            "The api-version query parameter (?api-version=) is required for all requests.",
            code="MissingApiVersionParameter",
        )


def advance(state: OpenAIState) -> None:
    """Provisioning finishes, and idle deployments are deleted, as time passes."""
    now = state.now()
    for name, deployment in list(state.arm_deployments.items()):
        if deployment.provisioning_state == "Creating" and now >= deployment.created_at + PROVISIONING_SECONDS:
            deployment.provisioning_state = "Succeeded"
            deployment.last_used = now
            state.deployments[name] = deployment.model
        elif deployment.provisioning_state == "Succeeded" and now - deployment.last_used >= IDLE_DELETE_SECONDS:
            del state.arm_deployments[name]
            state.deployments.pop(name, None)


def put(state: OpenAIState, name: str, path: str, body: dict[str, Any]) -> tuple[ArmDeployment, int]:
    model_spec = (body.get("properties") or {}).get("model") or {}
    sku = str((body.get("sku") or {}).get("name") or "")
    if model_spec.get("format") != "OpenAI" or not model_spec.get("name"):
        raise ApiError(400, "properties.model needs format 'OpenAI' and a name.", code="InvalidResourceProperties")
    model = str(model_spec["name"])
    if model not in state.fine_tuned or model in state.deleted_models:
        raise ApiError(
            400,
            f"The model '{model}' is not supported for deployment in this account.",
            code="DeploymentModelNotSupported",
        )
    if sku.lower() not in SKUS:
        raise ApiError(
            400, f"The SKU '{sku}' is not supported: use one of {', '.join(SKUS)}.", code="InvalidResourceProperties"
        )
    existing = state.arm_deployments.get(name)
    if existing is not None and existing.model == model:
        return existing, 200
    now = state.now()
    deployment = ArmDeployment(name, model, sku, path, now, now)
    state.arm_deployments[name] = deployment
    return deployment, 201


def get(state: OpenAIState, name: str) -> ArmDeployment:
    found: ArmDeployment | None = state.arm_deployments.get(name)
    if found is None:
        raise ApiError(404, f"The Resource 'deployments/{name}' was not found.", code="ResourceNotFound")
    return found


def delete(state: OpenAIState, name: str) -> int:
    if state.arm_deployments.pop(name, None) is None:
        return 204
    state.deployments.pop(name, None)
    return 200


def used(state: OpenAIState, deployment: str) -> None:
    """A chat through a deployment keeps it from being deleted as idle."""
    found = state.arm_deployments.get(deployment)
    if found is not None:
        found.last_used = state.now()
