"""A chat's history is cut to the model's window as OpenAI counts a prompt, oldest turns first."""

from __future__ import annotations

import pytest

from bot.chat.threads import ContextTooLong, fit_to_context
from bot.datasets.tokens import TokenCounter

COUNTER = TokenCounter("o200k_base")
TURNS = [
    ("user", "What is the capital of France?"),
    ("assistant", "Paris, as if everyone didn't know."),
    ("user", "Who wrote Hamlet?"),
    ("assistant", "Some fellow called Shakespeare."),
]


def prompt_tokens(messages: list[dict[str, str]]) -> int:
    """OpenAI's cookbook count: 3 per message, its role and content, and 3 to prime the reply (the counter
    agrees with tiktoken: tests/unit/datasets/test_validator_rules.py)."""
    return 3 + sum(3 + COUNTER.count(m["role"]) + COUNTER.count(m["content"]) for m in messages)


def test_everything_fits_in_a_large_window() -> None:
    messages = fit_to_context(
        system="You are Marv.",
        turns=TURNS,
        question="How far is the Moon?",
        window=10_000,
        reserve=500,
        counter=COUNTER,
    )
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[-1]["content"] == "How far is the Moon?"


@pytest.mark.parametrize("window", range(40, 140, 7))
def test_the_oldest_turns_go_first_and_the_prompt_fits(window: int) -> None:
    reserve = 10
    messages = fit_to_context(
        system="You are Marv.",
        turns=TURNS,
        question="How far is the Moon?",
        window=window,
        reserve=reserve,
        counter=COUNTER,
    )
    assert prompt_tokens(messages) <= window - reserve
    kept = [(m["role"], m["content"]) for m in messages[1:-1]]
    assert kept == TURNS[len(TURNS) - len(kept) :], "a suffix of the history, newest kept"
    assert not kept or kept[0][0] == "user", "a cut history starts with a question"


def test_a_question_that_cannot_fit_even_alone_is_refused_with_the_figures() -> None:
    with pytest.raises(ContextTooLong) as refused:
        fit_to_context(system=None, turns=TURNS, question="word " * 200, window=100, reserve=20, counter=COUNTER)
    assert refused.value.budget == 77 and refused.value.needed > 77
