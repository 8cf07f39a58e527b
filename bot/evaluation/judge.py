"""The judge: a third model that says which of two answers is better, asked with the order alternated."""

from __future__ import annotations

import logging

from bot.datasets.examples import Example
from storage.models import EvalSide

logger = logging.getLogger(__name__)

JUDGE_INSTRUCTIONS = (
    "You are grading two answers to the same conversation against a reference answer. Decide which "
    "answer is better: more correct and closer to the reference in meaning and form. Reply with exactly "
    "one word: A, B or tie."
)


def judge_messages(example: Example, first: str, second: str) -> list[dict[str, str]]:
    conversation = "\n".join(f"{m['role']}: {m['content']}" for m in example.messages)
    return [
        {"role": "system", "content": JUDGE_INSTRUCTIONS},
        {
            "role": "user",
            "content": f"[Conversation]\n{conversation}\n\n[Reference answer]\n{example.expected}\n\n"
            f"[Answer A]\n{first}\n\n[Answer B]\n{second}\n\nWhich answer is better: A, B or tie?",
        },
    ]


def read_verdict(text: str, *, candidate_first: bool) -> str:
    """The judge's one word as ``candidate``, ``baseline`` or ``tie`` (anything unreadable is a tie)."""
    words = text.strip().strip(".!*\"'`").split()
    word = words[0].strip(".,:;!*\"'`").lower() if words else ""
    if word == "a":
        return EvalSide.CANDIDATE if candidate_first else EvalSide.BASELINE
    if word == "b":
        return EvalSide.BASELINE if candidate_first else EvalSide.CANDIDATE
    return "tie"
