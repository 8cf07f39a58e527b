"""Nebius Token Factory's departures from OpenAI (providers.md §1.2), as the emulator enforces them:

- a job's hyperparameters sit beside it, with no ``method`` block, and include LoRA's; its
  ``learning_rate_multiplier`` is the learning rate itself (2e-5), so a multiplier of 2 is refused;
- a fine-tune answers only once deployed: ``POST /v0/models {name, base_model, source}`` with
  ``source`` = ``<job id>:<checkpoint id>``, then ``GET /v0/models/{name}`` until ``active`` or ``error``;
- a base is tuned under one id and chatted with under another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.openai.simulation import OpenAIState

from sandbox.openai.state import NEBIUS_DEPLOY_SECONDS, NEBIUS_SERVING_IDS, ApiError, NebiusDeployment

# name: (type, low, high); booleans have no bounds.
HYPERPARAMETERS: dict[str, tuple[type, float, float]] = {
    "n_epochs": (int, 1, 20),
    "batch_size": (int, 1, 256),
    # The rate itself at Nebius: anything above this is a multiplier sent by mistake.
    "learning_rate_multiplier": (float, 0.0, 0.01),
    "lora_r": (int, 1, 256),
    "lora_alpha": (int, 1, 512),
    "warmup_ratio": (float, 0.0, 0.5),
    "weight_decay": (float, 0.0, 1.0),
}
FLAGS = ("lora", "packing")
DEFAULT_LEARNING_RATE = 2e-5


def check_job(body: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters of a Nebius job create, or the 400 it gets."""
    if "method" in body:
        raise ApiError(400, "Unrecognized request argument supplied: method", param="method")
    raw = dict(body.get("hyperparameters") or {})
    unknown = set(raw) - set(HYPERPARAMETERS) - set(FLAGS)
    if unknown:
        name = sorted(unknown)[0]
        raise ApiError(400, f"Unknown hyperparameter: '{name}'.", param=f"hyperparameters.{name}")
    values: dict[str, Any] = {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"}
    for name, value in raw.items():
        if name in FLAGS:
            if not isinstance(value, bool):
                raise ApiError(400, f"'{name}' must be true or false.", param=f"hyperparameters.{name}")
            values[name] = value
            continue
        kind, low, high = HYPERPARAMETERS[name]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if kind is int:
            number = number and float(value).is_integer()
        rate = name == "learning_rate_multiplier"
        if not (number and low <= value <= high) or (rate and value == 0):
            hint = " It is the learning rate itself at Nebius, e.g. 2e-05, not a multiplier." if rate else ""
            raise ApiError(
                400,
                f"Invalid value for '{name}': {value!r} is outside {low:g}..{high:g}.{hint}",
                param=f"hyperparameters.{name}",
            )
        values[name] = int(value) if kind is int else float(value)
    if values["learning_rate_multiplier"] == "auto":
        values["learning_rate_multiplier"] = DEFAULT_LEARNING_RATE
    return values


def create_deployment(state: OpenAIState, body: dict[str, Any]) -> NebiusDeployment:
    """``POST /v0/models``: serve a job's checkpoint under a name of the caller's."""
    for field in ("name", "base_model", "source"):
        if not isinstance(body.get(field), str) or not body[field]:
            raise ApiError(400, f"Missing required field: '{field}'.", param=field)
    name, source = body["name"], body["source"]
    if name in state.nebius_deployments and state.nebius_deployments[name].status != "deleted":
        raise ApiError(409, f"A model named '{name}' already exists.", param="name", code="conflict")
    job_id, _, checkpoint_id = source.partition(":")
    job = state.jobs.get(job_id)
    if job is None or job.status != "succeeded" or job.fine_tuned_model is None:
        raise ApiError(400, f"Source '{source}': no finished fine-tuning job {job_id}.", param="source")
    if checkpoint_id and all(checkpoint["id"] != checkpoint_id for checkpoint in job.checkpoints):
        raise ApiError(400, f"Source '{source}': job {job_id} has no checkpoint {checkpoint_id}.", param="source")
    if body["base_model"] != job.model:
        raise ApiError(400, f"'base_model' must be the base the job tuned ({job.model}).", param="base_model")
    now = state.now()
    deployment = NebiusDeployment(
        name=name,
        base_model=job.model,
        source=source,
        model=job.fine_tuned_model,
        created_at=now,
        active_at=now + NEBIUS_DEPLOY_SECONDS,
    )
    state.nebius_deployments[name] = deployment
    return deployment


def deployment(state: OpenAIState, name: str) -> NebiusDeployment:
    found = state.nebius_deployments.get(name)
    if found is None or found.status == "deleted":
        raise ApiError(404, f"Model '{name}' not found.", code="not_found")
    if found.status == "deploying" and state.now() >= found.active_at:
        found.status = "active"
    return found


def chat_model(state: OpenAIState, requested: str) -> str:
    """The model a Nebius chat request reaches: a deployment by its name, or a base by its serving id."""
    deployed = state.nebius_deployments.get(requested)
    if deployed is not None and deployment(state, requested).status == "active":
        return deployed.model
    if requested in state.fine_tuned:
        raise ApiError(
            404, f"Model '{requested}' is not deployed: serve it first with POST /v0/models.", code="model_not_found"
        )
    if requested not in state.base_models or NEBIUS_SERVING_IDS.get(requested, requested) != requested:
        raise ApiError(404, f"The model `{requested}` does not exist or is not served.", code="model_not_found")
    return requested
