"""Training files the tests make up, shared by the contract, adapter and scenario tests."""

from __future__ import annotations

import json


def chat_lines(count: int, *, system: str = "You are Marv, a sarcastic assistant.") -> bytes:
    topics = ["capital of France", "boiling point of water", "author of Hamlet", "speed of light", "largest ocean"]
    lines = []
    for index in range(count):
        topic = topics[index % len(topics)]
        lines.append(
            json.dumps(
                {
                    "messages": [
                        {"role": "system", "content": system},
                        {"role": "user", "content": f"What is the {topic}? (question {index})"},
                        {"role": "assistant", "content": f"Obviously, everyone knows the {topic}. Answer {index}."},
                    ]
                }
            )
        )
    return ("\n".join(lines) + "\n").encode()
