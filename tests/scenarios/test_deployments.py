"""Deploy and Stop serving, where a provider answers with a fine-tune only once deployed: Nebius's
/v0/models and Azure's management API, each through its emulator, and a deployment that Azure deleted
after 15 idle days, noticed at the next chat and offered again."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot import ticks
from bot.clock import FrozenClock
from sandbox.openai import OpenAIEmulator, entra
from storage.models import AuditEntry, Deployment
from tests.conftest import ALICE, BOB, GENERAL, BotUnderTest
from tests.scenarios.scenes import ask, marv_file, open_modal, result_of, root_of, shared_report
from tests.scenarios.test_nebius import LLAMA
from tests.scenarios.test_providers import follow

MINI = "gpt-4o-mini-2024-07-18"
LLAMA_SERVED = "meta-llama/Meta-Llama-3.1-8B-Instruct"


async def deployments(bot: BotUnderTest) -> list[Deployment]:
    async with bot.services.db.session() as session:
        return list((await session.exec(select(Deployment).order_by(Deployment.id))).all())  # type: ignore[arg-type]


async def trained_result(
    bot: BotUnderTest, clock: FrozenClock, emulator: OpenAIEmulator, tmp_path: Path, model: str
) -> Any:
    report = await shared_report(bot, marv_file(tmp_path))
    modal = await open_modal(bot, ALICE, bot.driver.click(ALICE, report, "dataset_train"))
    await bot.driver.submit_form(ALICE, modal, {"model": model})
    await follow(bot, clock, [emulator], lambda: result_of(bot, report) is not None)
    return result_of(bot, report)


async def tick(bot: BotUnderTest, clock: FrozenClock, emulator: OpenAIEmulator, seconds: float) -> None:
    clock.advance(timedelta(seconds=seconds))
    emulator.state.clock.advance(seconds)
    await ticks.tick(bot.services, owner="a")


async def chat_root(bot: BotUnderTest, result: Any) -> Any:
    await bot.driver.click(ALICE, result, "chat_start")
    return await bot.workspace.wait_for(lambda: root_of(bot, "💬"))


@pytest.mark.slow
async def test_a_nebius_model_is_deployed_chatted_with_and_stopped(
    bot_factory: Any, nebius_emulator: OpenAIEmulator, clock: FrozenClock, tmp_path: Path
) -> None:
    state = nebius_emulator.state
    bot: BotUnderTest = await bot_factory(
        finetune_providers={
            "nebius": {"kind": "nebius", "base_url": nebius_emulator.base_url, "api_key": state.api_key}
        }
    )
    result = await trained_result(bot, clock, nebius_emulator, tmp_path, LLAMA)
    shown = json.dumps(result.blocks, ensure_ascii=False)
    assert "model_deploy" in shown and "bills only the tokens it answers" in shown

    root = await chat_root(bot, result)
    (notice,) = await ask(bot, root, "Who are you?", expect=1)
    assert "only once deployed" in notice.text and "model_deploy" in json.dumps(notice.blocks)
    assert state.chat_requests == [], "nothing is asked of a model that cannot answer"

    await bot.driver.click(BOB, result, "model_deploy")
    refusal = await bot.workspace.wait_for(lambda: bot.workspace.ephemerals_for(BOB))
    assert "Only <@" in refusal[-1].text, "who trained it, or an admin, deploys it"

    await bot.driver.click(ALICE, notice, "model_deploy")
    await bot.workspace.wait_for(lambda: state.nebius_deployments)
    (sent,) = state.nebius_deployments.values()
    job = next(iter(state.jobs.values()))
    assert sent.base_model == LLAMA and sent.source.startswith(f"{job.id}:ftckpt_"), "the newest checkpoint"
    (row,) = await deployments(bot)
    assert row.status == "deploying"
    await bot.driver.click(ALICE, result, "model_deploy")
    again = await bot.workspace.wait_for(
        lambda: next((e for e in bot.workspace.ephemerals_for(ALICE) if "already deploying" in e.text), None)
    )
    assert again and len(state.nebius_deployments) == 1, "a second click finds the first"

    await tick(bot, clock, nebius_emulator, 40)
    (row,) = await deployments(bot)
    assert row.status == "active"
    served = next(m for m in bot.workspace.replies_of(GENERAL, result.thread_ts or result.ts) if m.ts == row.message_ts)
    assert served.text.startswith("✅") and "model_undeploy" in json.dumps(served.blocks)

    replies = await ask(bot, root, "Who are you?", expect=2)
    assert not replies[-1].text.startswith("⚠️") and state.chat_requests, "answered through the deployment"
    await bot.driver.click(ALICE, result, "compare_start")
    compare = await bot.workspace.wait_for(lambda: root_of(bot, "⚖️"))
    both = await ask(bot, compare, "Who are you?", expect=2)
    assert not any(reply.text.startswith("⚠️") for reply in both), "the base answers under its serving id"
    assert any(request["model"] == LLAMA_SERVED for request in state.chat_requests)

    await bot.driver.click(ALICE, served, "model_undeploy")
    await bot.workspace.wait_for(lambda: "stopped serving" in served.text)
    (row,) = await deployments(bot)
    assert (row.status, row.ended_by) == ("deleted", ALICE) and state.nebius_deployments[row.name].status == "deleted"
    (last,) = (await ask(bot, root, "Still there?", expect=3))[-1:]
    assert "only once deployed" in last.text
    async with bot.services.db.session() as session:
        actions = [entry.action for entry in (await session.exec(select(AuditEntry))).all()]
    assert "deploy" in actions and "undeploy" in actions


async def azure_bot(
    bot_factory: Any,
    azure: OpenAIEmulator,
    *,
    token: str | None = None,
    api_version: str = "2025-04-01-preview",
    entra_only: bool = False,
) -> BotUnderTest:
    """The bot on Azure with a key and a fixed management token, or (``entra_only``) with neither: then
    every token comes from azure-identity."""
    secrets = (
        {}
        if entra_only
        else {"api_key": azure.state.api_key, "management_token": token or azure.state.management_token}
    )
    bot: BotUnderTest = await bot_factory(
        finetune_providers={
            "azure": {
                "kind": "azure",
                "api_version": api_version,
                "base_url": azure.azure_endpoint,
                "subscription_id": "sub-1",
                "resource_group": "ml",
                "account": "acme-openai",
                "management_url": azure.azure_endpoint,
                **secrets,
            }
        }
    )
    return bot


def managed_identity(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]) -> None:
    """The process environment of an App Service app with a managed identity, and no other way to sign in."""
    for name in (
        "AZURE_CLIENT_ID",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_FEDERATED_TOKEN_FILE",
        "MSI_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    # The one credential DefaultAzureCredential tries, so that a developer's own `az login` cannot answer.
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "ManagedIdentityCredential")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("api_version", "chat_path"),
    [("2025-04-01-preview", "/openai/deployments/{name}/chat/completions"), ("v1", "/openai/v1/chat/completions")],
)
async def test_an_azure_deployment_that_vanished_is_noticed_at_the_next_chat_and_offered_again(
    bot_factory: Any,
    azure_emulator: OpenAIEmulator,
    clock: FrozenClock,
    tmp_path: Path,
    api_version: str,
    chat_path: str,
) -> None:
    state = azure_emulator.state
    bot = await azure_bot(bot_factory, azure_emulator, api_version=api_version)
    result = await trained_result(bot, clock, azure_emulator, tmp_path, MINI)
    assert "$1.70 an hour" in json.dumps(result.blocks), "the hourly cost, before Deploy"

    await bot.driver.click(ALICE, result, "model_deploy")
    await bot.workspace.wait_for(lambda: state.arm_deployments)
    (row,) = await deployments(bot)
    assert state.arm_deployments[row.name].provisioning_state == "Creating"
    await tick(bot, clock, azure_emulator, 30)
    assert (await deployments(bot))[0].status == "deploying", "Azure takes a minute"
    await tick(bot, clock, azure_emulator, 40)
    assert (await deployments(bot))[0].status == "active"

    root = await chat_root(bot, result)
    replies = await ask(bot, root, "Who are you?", expect=1)
    assert not replies[-1].text.startswith("⚠️")
    assert any(path == chat_path.format(name=row.name) for _, path in state.calls)
    if api_version == "v1":
        assert all(path.startswith(("/openai/v1/", "/subscriptions/")) for _, path in state.calls), (
            "no api-version paths"
        )
        assert state.chat_requests[-1]["model"] == next(iter(state.fine_tuned)), "the deployment, as the model"

    await tick(bot, clock, azure_emulator, 16 * 24 * 3600)
    assert row.name not in state.arm_deployments, "Azure deleted it after 15 idle days"
    (notice,) = (await ask(bot, root, "Are you still there?", expect=2))[-1:]
    assert f"deployment `{row.name}` is gone at Azure OpenAI" in notice.text
    assert "model_deploy" in json.dumps(notice.blocks)
    assert (await deployments(bot))[0].status == "deleted"

    await bot.driver.click(ALICE, notice, "model_deploy")
    await bot.workspace.wait_for(lambda: row.name in state.arm_deployments)
    first, second = await deployments(bot)
    assert (first.status, second.status) == ("deleted", "deploying")


@pytest.mark.slow
async def test_the_management_api_takes_an_entra_token_not_the_api_key(
    bot_factory: Any, azure_emulator: OpenAIEmulator, clock: FrozenClock, tmp_path: Path
) -> None:
    bot = await azure_bot(bot_factory, azure_emulator, token=azure_emulator.state.api_key)
    result = await trained_result(bot, clock, azure_emulator, tmp_path, MINI)
    await bot.driver.click(ALICE, result, "model_deploy")
    refusal = await bot.workspace.wait_for(
        lambda: next((e for e in bot.workspace.ephemerals_for(ALICE) if "refused" in e.text), None)
    )
    assert "takes an Entra ID access token" in refusal.text and "management_token" in refusal.text
    assert azure_emulator.state.api_key not in refusal.text
    (row,) = await deployments(bot)
    assert row.status == "failed" and row.live_job_id is None, "the model is free for another try"


@pytest.mark.slow
@pytest.mark.parametrize("api_version", ["2025-04-01-preview", "v1"])
async def test_with_no_key_and_no_token_the_bot_trains_deploys_and_chats_through_entra_id(
    bot_factory: Any,
    azure_emulator: OpenAIEmulator,
    clock: FrozenClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    api_version: str,
) -> None:
    state = azure_emulator.state
    managed_identity(monkeypatch, azure_emulator.identity_environment)
    bot = await azure_bot(bot_factory, azure_emulator, api_version=api_version, entra_only=True)
    result = await trained_result(bot, clock, azure_emulator, tmp_path, MINI)
    assert "model_deploy" in json.dumps(result.blocks)

    await bot.driver.click(ALICE, result, "model_deploy")
    await bot.workspace.wait_for(lambda: state.arm_deployments)
    await tick(bot, clock, azure_emulator, 70)
    assert (await deployments(bot))[0].status == "active"
    replies = await ask(bot, await chat_root(bot, result), "Who are you?", expect=1)
    assert not replies[-1].text.startswith("⚠️")
    assert set(state.entra_tokens.values()) == {entra.DATA_PLANE, entra.MANAGEMENT}, "each API its own audience"


@pytest.mark.slow
async def test_an_identity_that_gets_no_token_is_told_to_an_admin_without_the_secret(
    bot_factory: Any,
    azure_emulator: OpenAIEmulator,
    clock: FrozenClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = azure_emulator.state
    managed_identity(monkeypatch, azure_emulator.identity_environment)
    bot = await azure_bot(bot_factory, azure_emulator, entra_only=True)
    result = await trained_result(bot, clock, azure_emulator, tmp_path, MINI)

    # The bot restarted where the identity is gone or changed: the token endpoint refuses it.
    monkeypatch.setenv("IDENTITY_HEADER", "a-header-the-endpoint-refuses")
    fresh = await azure_bot(bot_factory, azure_emulator, entra_only=True)
    await fresh.driver.click(ALICE, result, "model_deploy")
    refusal = await fresh.workspace.wait_for(
        lambda: next((e for e in fresh.workspace.ephemerals_for(ALICE) if "refused" in e.text), None)
    )
    assert "Entra ID gave no token for https://management.azure.com/.default" in refusal.text
    assert "managed identity" in refusal.text and "api_key" in refusal.text, "what an admin can do"
    assert state.identity_header not in refusal.text and "a-header-the-endpoint-refuses" not in refusal.text
    assert not state.arm_deployments
    (row,) = await deployments(bot)
    assert row.status == "failed", "the model is free for another try"
