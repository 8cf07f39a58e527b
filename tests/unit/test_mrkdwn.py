"""No text from a file, a person, a provider or a model can become a link, a mention or broken markup.

Each Block Kit builder is called twice: once with hostile text in every slot that holds outside text,
once with a harmless word there. Slack must read the same mentions and links in both (the bot's own),
and no stray bracket: whatever the hostile text held stays text.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import slack_blocks
from bot.chat import views as chat_views
from bot.datasets import views as dataset_views
from bot.evaluation import views as evaluation_views
from bot.flywheel import views as flywheel_views
from bot.home import views as home_views
from bot.models import views as model_views
from bot.mrkdwn import escape
from bot.providers.capabilities import OPENAI
from bot.providers.types import BaseModelInfo
from bot.training import views as training_views
from bot.training.offers import Offer
from sandbox.slack import mrkdwn as slack_mrkdwn
from sandbox.slack.simulation import BLOCKS_PER_VIEW, check_text_and_blocks, check_view

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
HARMLESS = "plain"

# Pieces Slack reads as markup, mixed with ordinary characters.
hostile_text = st.lists(
    st.sampled_from(
        [
            "<!channel>",
            "<!here>",
            "<!everyone>",
            "<@U0ALICE>",
            "<#C0SECRET>",
            "<!subteam^S0ADMINS>",
            "<https://evil.example/login|Slack SSO>",
            "<mailto:a@b.c>",
            "<",
            ">",
            "&",
            "&lt;",
            "|",
            "`",
            "*",
            "\n",
            "List<String>",
            "a < b && b > c",
        ]
    )
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=8),
    min_size=1,
    max_size=6,
).map("".join)


def _job(text: str, status: str = "succeeded") -> SimpleNamespace:
    return SimpleNamespace(
        id=7,
        status=status,
        provider_job_id=text,
        base_model=text,
        provider=text,
        fine_tuned_model=text,
        method=text,
        hyperparameters={"n_epochs": text},
        estimated_cost_usd=1.0,
        actual_cost_usd=1.0,
        requested_by="U0ALICE",
        cancelled_by=None,
        created_at=NOW,
        finished_at=NOW,
        estimated_finish=None,
        step=3,
        total_steps=9,
        train_loss=0.5,
        valid_loss=None,
        trained_tokens=100,
        model_retires=date(2027, 1, 14),
        error_message=text * 400,
    )


def _dataset(text: str) -> SimpleNamespace:
    return SimpleNamespace(
        id=3,
        filename=text,
        format="chat",
        examples=10,
        total_tokens=100,
        valid=True,
        channel_id="C0GENERAL",
        message_ts="1.000001",
        uploaded_by="U0BOB",
        created_at=NOW,
        parent_id=None,
        version=1,
        report=_report(text),
    )


def _report(text: str) -> dict[str, Any]:
    issue = {"code": "invalid_role", "line": 2, "message": f"role {text} is not one of system, user, assistant"}
    return {
        "valid": False,
        "format": "chat",
        "examples": 10,
        "method": "supervised",
        "errors": [issue],
        "error_counts": {"invalid_role": 1},
        "warnings": [issue],
        "warning_counts": {"invalid_role": 1},
        "tokens": {"total": 10, "min": 1, "mean": 1.0, "p50": 1, "p95": 1, "max": 1},
        "billing": {"model": text, "epochs": 3, "billed_tokens": 30, "estimated_cost_usd": 0.1},
        "notes": [text],
        "common_system_prompt": text,
    }


def _evaluation(text: str, status: str = "done") -> SimpleNamespace:
    side = {
        "exact_match": 0.5,
        "normalized_match": 0.5,
        "token_f1": 0.5,
        "failed": 1,
        "macro_precision": 0.5,
        "macro_recall": 0.5,
        "macro_f1": 0.5,
        "micro_f1": 0.5,
        "per_class": [{"label": text, "support": 2, "f1": 0.5}],
        "confusion": {"labels": [text], "rows": [[2]]},
    }
    metrics = {
        "examples": 2,
        "classification": True,
        "candidate": side,
        "baseline": {**side, "per_class": [{"label": text, "support": 2, "f1": 0.1}]},
        "head_to_head": {"wins": 1, "ties": 0, "losses": 1, "win_rate": 0.5, "decided_by": f"the judge `{text}`"},
        "differences": [{"position": 0, "question": text, "expected": text, "candidate": text, "baseline": text}],
        "usage": {"candidate": {"model": text, "prompt_tokens": 1, "completion_tokens": 1, "cost_usd": 0.001}},
    }
    return SimpleNamespace(
        id=5,
        status=status,
        model=text,
        baseline_model=text,
        judge_model=text,
        total=2,
        overlap=1,
        estimated_cost_usd=0.01,
        cost_usd=0.01,
        requested_by="U0ALICE",
        error_message=text,
        finished_at=NOW,
        created_at=NOW,
        metrics=metrics,
    )


def _golden(text: str, status: str) -> SimpleNamespace:
    return SimpleNamespace(id=2, model=text, status=status, total=4, started_by="U0BOB", error_message=text)


def _candidate(text: str) -> SimpleNamespace:
    example = {"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": text}]}
    return SimpleNamespace(id=9, kind="corrected", contributor="U0BOB", example=example)


BUILDERS: dict[str, Callable[[str], Any]] = {
    "help": lambda t: (slack_blocks.help_blocks("/finetune", [(t, t)]), slack_blocks.help_text("/finetune", [(t, t)])),
    "report": lambda t: (
        dataset_views.report_text(t, _report(t)),
        dataset_views.report_blocks(dataset_id=1, filename=t, report=_report(t)),
        dataset_views.report_details_blocks(dataset_id=1, filename=t, report=_report(t)),
    ),
    "file sentences": lambda t: (
        dataset_views.not_jsonl_text(t),
        dataset_views.same_data_text(_dataset(t)),
        dataset_views.too_large_text(t, 10, 5),
        dataset_views.download_refused_text(t, 403),
    ),
    "datasets": lambda t: dataset_views.datasets_list_blocks([_dataset(t)], workspace_url="https://acme.slack.com/"),
    "train form": lambda t: training_views.train_modal(
        dataset=_dataset(t),
        offers=[Offer(t, "openai", t, BaseModelInfo(t, ("supervised",), None, None), t, OPENAI)],
        grouped=True,
        choice={"model": t},
        validation_choices=[_dataset(t)],
        estimate=training_views.estimate_text(model=t, epochs=2, capped_tokens=10, cost=None),
        private_metadata="{}",
        capabilities=OPENAI,
        notes=[t],
    ),
    "job card": lambda t: training_views.job_card(_job(t, "running"), dataset_name=t, title="🚀 *Training*", now=NOW),
    "approval": lambda t: (
        training_views.approval_request(_job(t), dataset_name=t, reason="it is expensive"),
        training_views.approval_decided(_job(t), dataset_name=t, decision="approved", admin="U0BOB"),
    ),
    "results": lambda t: [
        training_views.result_blocks(
            _job(t, status),
            dataset_name=t,
            checkpoints=[SimpleNamespace(step=1, model=t, metrics={"train_loss": 0.1})],
            provider_label="OpenAI",
            now=NOW,
        )
        for status in ("succeeded", "failed", "cancelled")
    ],
    "chat root": lambda t: chat_views.chat_root(model=t, compare_model=t, system_prompt=t, user="U0ALICE"),
    "models": lambda t: (
        model_views.model_line(_job(t), today=NOW.date(), provider=t),
        model_views.reminder_text(_job(t), left=3),
        model_views.training_reminder_text(t, [t], day=NOW.date(), left=7),
        model_views.model_actions(1, t),
    ),
    "home": lambda t: home_views.home_view(
        datasets=[_dataset(t)],
        jobs=[_job(t)],
        models=[_job(t)],
        evaluations=[(_evaluation(t), t)],
        spend=1.0,
        budget=None,
        pages={},
        now=NOW,
        provider_label=lambda _name: t,
    ),
    "golden sets": lambda t: [
        (model_views.golden_progress(_golden(t, s), done=2), model_views.golden_summary(_golden(t, s), done=2))
        for s in ("done", "failed")
    ],
    "evaluations": lambda t: (
        evaluation_views.evaluation_confirmation(_evaluation(t), dataset_name=t, usable=3, tokens=10),
        evaluation_views.evaluation_progress(_evaluation(t), dataset_name=t, done=1),
        evaluation_views.evaluation_report(_evaluation(t), dataset_name=t),
        evaluation_views.evaluation_stopped(_evaluation(t, "failed"), done=1),
        evaluation_views.evaluation_modal(_job(t), datasets=[_dataset(t)], initial_dataset_id=None),
        evaluation_views.evaluation_line(_evaluation(t), dataset_name=t),
        evaluation_views.evaluation_line(_evaluation(t, "failed"), dataset_name=t),
    ),
    "flywheel": lambda t: (
        flywheel_views.candidates_blocks(_dataset(t), [_candidate(t)], duplicates=set(), may_drop=True),
        flywheel_views.version_announcement(
            _dataset(t), name=t, version=2, diff={"contributors": ["U0BOB"], "added": {"corrected": 1}}
        ),
    ),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=hostile_text)
def test_outside_text_never_becomes_markup(text: str) -> None:
    for name, build in BUILDERS.items():
        assert slack_mrkdwn.markup_of(build(text)) == slack_mrkdwn.markup_of(build(HARMLESS)), (
            f"{name}: {text!r} became markup"
        )


def test_a_spoofed_link_and_a_channel_ping_stay_text() -> None:
    text = "<https://evil.example/login|Slack SSO> <!here>"
    _, root = chat_views.chat_root(model="gpt-4o-mini", compare_model=None, system_prompt=text, user="U0ALICE")
    shown = root[1]["text"]["text"]
    assert slack_mrkdwn.entities(shown) == []
    assert "<https://evil.example/login|Slack SSO> <!here>" in slack_mrkdwn.render(
        shown, user_name=str, channel_name=str
    )


def test_the_help_text_shows_its_brackets() -> None:
    [_, listing, _] = slack_blocks.help_blocks(
        "/finetune", [("chat <model|job>", "talk"), ("validate <dataset>", "check")]
    )
    shown = slack_mrkdwn.render(listing["text"]["text"], user_name=str, channel_name=str)
    assert "`/finetune chat <model|job>`" in shown and "`/finetune validate <dataset>`" in shown


@given(text=st.text())
def test_escape_is_read_back_as_the_same_text(text: str) -> None:
    escaped = escape(text)
    assert slack_mrkdwn.entities(escaped) == [] and slack_mrkdwn.stray_brackets(escaped) == 0
    assert slack_mrkdwn.render(escaped, user_name=str, channel_name=str) == text


def test_a_long_provider_error_is_split_not_raised() -> None:
    job = _job("x", "failed")
    job.error_message = "The training file has a problem. " * 400
    _, result = training_views.result_blocks(
        job, dataset_name="marv.jsonl", checkpoints=[], provider_label="OpenAI", now=NOW
    )
    sections = [block["text"]["text"] for block in result if block["type"] == "section"]
    assert len(sections) > 1 and all(len(text) <= slack_blocks.SECTION_TEXT_LIMIT for text in sections)
    assert "".join(sections).count("problem") == 400, "nothing of the message is lost"
    job.error_message = "x" * 40_000
    _, result = training_views.result_blocks(
        job, dataset_name="marv.jsonl", checkpoints=[], provider_label="OpenAI", now=NOW
    )
    assert len(result) == training_views.RESULT_TEXT_SECTIONS + 2
    assert "the rest of the message is at OpenAI" in result[-2]["elements"][0]["text"]


def _sections(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [text for item in value for text in _sections(item)]
    if isinstance(value, dict):
        found = []
        if value.get("type") in ("section", "context"):
            texts = [value["text"]] if "text" in value else [*value.get("fields", []), *value.get("elements", [])]
            found += [t["text"] for t in texts if isinstance(t, dict) and "text" in t]
        for key in ("blocks", "accessory"):
            if key in value:
                found += _sections(value[key])
        return found
    return []


def _blocks(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, list | tuple):
        return [block for item in value for block in _blocks(item)]
    if isinstance(value, dict):
        return [value, *_blocks(value.get("blocks", []))]
    return []


@pytest.mark.slow
def test_long_outside_text_never_breaks_slacks_limits() -> None:
    """Escaping makes text longer (a '<' is four characters): no builder raises or passes Slack's 3,000."""
    for name, build in BUILDERS.items():
        built = build("<" * 5000)
        assert all(len(text) <= slack_blocks.SECTION_TEXT_LIMIT for text in _sections(built)), name
        fields = [f["text"] for block in _blocks(built) for f in block.get("fields", [])]
        assert all(len(text) <= slack_blocks.FIELD_TEXT_LIMIT for text in fields), name
        for view in (block for block in _blocks(built) if block.get("type") in ("modal", "home")):
            check_view(view)
            check_text_and_blocks({"text": "x", "blocks": view["blocks"]}, limit_blocks=BLOCKS_PER_VIEW)
        for blocks in _messages(built):
            check_text_and_blocks({"text": "x", "blocks": blocks})  # every rule the Slack emulator enforces


def _messages(value: Any) -> list[list[dict[str, Any]]]:
    """The block lists a builder returned for a message (a view's blocks are checked with the view)."""
    if isinstance(value, list) and value and all(isinstance(b, dict) and "type" in b for b in value):
        return [value]
    if isinstance(value, list | tuple):
        return [blocks for item in value for blocks in _messages(item)]
    return []
