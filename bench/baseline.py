"""The cookbook's way, as a baseline, following `examples/Chat_finetuning_data_prep.ipynb` step by step.

Load the whole file with json.loads into a list; run the notebook's format checks; count tokens with
its num_tokens_from_messages (3 per message, every value encoded, +1 per name, +3) and its assistant
token count; report the distributions. Only two changes: the encoding is the validated model's
(the notebook hard-codes cl100k_base), and non-string values such as ``weight`` are skipped where
the notebook would crash on them.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import tiktoken


def main(path: str, encoding_name: str) -> None:
    with Path(path).open(encoding="utf-8") as source:
        dataset = [json.loads(line) for line in source]

    format_errors: dict[str, int] = defaultdict(int)
    for example in dataset:
        if not isinstance(example, dict):
            format_errors["data_type"] += 1
            continue
        messages = example.get("messages", None)
        if not messages:
            format_errors["missing_messages_list"] += 1
            continue
        for message in messages:
            if "role" not in message or "content" not in message:
                format_errors["message_missing_key"] += 1
            if any(k not in ("role", "content", "name", "function_call", "weight") for k in message):
                format_errors["message_unrecognized_key"] += 1
            if message.get("role", None) not in ("system", "user", "assistant", "function"):
                format_errors["unrecognized_role"] += 1
            content = message.get("content", None)
            function_call = message.get("function_call", None)
            if (not content and not function_call) or not isinstance(content, str):
                format_errors["missing_content"] += 1
        if not any(message.get("role", None) == "assistant" for message in messages):
            format_errors["example_missing_assistant_message"] += 1

    encoding = tiktoken.get_encoding(encoding_name)

    def num_tokens_from_messages(messages: list[dict[str, object]]) -> int:
        num_tokens = 0
        for message in messages:
            num_tokens += 3
            for key, value in message.items():
                if isinstance(value, str):
                    num_tokens += len(encoding.encode(value))
                if key == "name":
                    num_tokens += 1
        return num_tokens + 3

    def num_assistant_tokens_from_messages(messages: list[dict[str, object]]) -> int:
        return sum(
            len(encoding.encode(str(message["content"]))) for message in messages if message["role"] == "assistant"
        )

    n_missing_system = n_missing_user = 0
    n_messages, convo_lens, assistant_message_lens = [], [], []
    for example in dataset:
        messages = example["messages"]
        if not any(message["role"] == "system" for message in messages):
            n_missing_system += 1
        if not any(message["role"] == "user" for message in messages):
            n_missing_user += 1
        n_messages.append(len(messages))
        convo_lens.append(num_tokens_from_messages(messages))
        assistant_message_lens.append(num_assistant_tokens_from_messages(messages))

    summary = {}
    for name, values in (("messages", n_messages), ("total", convo_lens), ("assistant", assistant_message_lens)):
        deciles = statistics.quantiles(values, n=10)
        summary[name] = [
            min(values),
            max(values),
            statistics.mean(values),
            statistics.median(values),
            deciles[0],
            deciles[-1],
        ]
    print(json.dumps({"examples": len(dataset), "errors": dict(format_errors), "total": sum(convo_lens)}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
