"""A synthetic chat JSONL with the repetition real team data has: a few shared system prompts."""

from __future__ import annotations

import itertools
import json
import math
import random
from pathlib import Path

SYLLABLES = [
    "ka",
    "ri",
    "to",
    "na",
    "me",
    "lo",
    "su",
    "vi",
    "de",
    "ra",
    "po",
    "li",
    "an",
    "en",
    "ter",
    "ing",
    "tion",
    "al",
    "com",
    "pro",
    "con",
    "ex",
    "pre",
    "re",
    "un",
    "der",
    "ver",
    "sta",
    "ble",
    "ment",
    "ness",
    "ous",
    "ive",
    "ly",
    "ful",
    "ish",
    "ize",
    "ate",
    "ist",
    "ism",
    "ant",
    "ent",
    "ic",
    "cal",
    "form",
    "port",
    "ject",
    "struct",
    "duct",
    "mit",
    "spect",
    "vid",
    "aud",
    "dict",
    "graph",
    "log",
    "phon",
    "scrib",
    "trans",
    "inter",
    "multi",
    "micro",
    "macro",
    "cyber",
    "data",
    "net",
    "work",
    "shop",
]
FOREIGN = ["résumé", "café", "naïve", "über", "straße", "東京の天気", "数据模型", "данные", "модель", "بيانات", "नमस्ते"]
EMOJI = ["🙂", "🚀", "✅", "👩‍💻", "📦"]


def _vocabulary(rng: random.Random, size: int = 20_000) -> list[str]:
    words = {"".join(rng.choice(SYLLABLES) for _ in range(rng.choice([1, 2, 2, 3, 3, 4]))) for _ in range(size)}
    return sorted(words)


class _Writer:
    """Zipf-distributed words, numbers, code and URLs: text whose tokens look like real chat data."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.words = _vocabulary(rng)
        self.cumulative = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(self.words))))

    def sentence(self, count: int) -> str:
        rng = self.rng
        words = rng.choices(self.words, cum_weights=self.cumulative, k=count)
        roll = rng.random()
        if roll < 0.08:
            words.insert(rng.randrange(len(words)), f"{rng.randint(1, 99999):,}")
        elif roll < 0.11:
            words.insert(rng.randrange(len(words)), rng.choice(FOREIGN))
        elif roll < 0.13:
            words.insert(
                rng.randrange(len(words)), f"https://example.com/{rng.choice(self.words)}/{rng.randint(1, 999)}"
            )
        elif roll < 0.14:
            words.append(rng.choice(EMOJI))
        text = " ".join(words)
        return text[0].upper() + text[1:] + rng.choice([".", "?", "!", ".", ",", ";"])

    def paragraph(self, mean_words: float) -> str:
        rng = self.rng
        remaining = max(3, int(rng.lognormvariate(math.log(mean_words), 0.6)))
        sentences = []
        while remaining > 0:
            take = min(remaining, rng.randint(6, 18))
            sentences.append(self.sentence(take))
            remaining -= take
        if rng.random() < 0.05:
            sentences.append(f"\n```python\ndef {rng.choice(self.words)}(x):\n    return x * {rng.randint(2, 9)}\n```")
        return " ".join(sentences)


def generate(path: Path, target_bytes: int, *, seed: int = 12345) -> int:
    """Write about ``target_bytes`` of chat examples; returns the number of examples."""
    rng = random.Random(seed)
    writer = _Writer(rng)
    system_prompts = [writer.paragraph(45) for _ in range(12)]
    written = examples = 0
    with path.open("w", encoding="utf-8") as sink:
        while written < target_bytes:
            messages = []
            if rng.random() < 0.85:
                messages.append({"role": "system", "content": rng.choice(system_prompts)})
            for _ in range(rng.choices([1, 2, 3], weights=[70, 20, 10])[0]):
                messages.append({"role": "user", "content": writer.paragraph(12)})
                assistant: dict[str, object] = {"role": "assistant", "content": writer.paragraph(25)}
                if rng.random() < 0.05:
                    assistant["weight"] = 0
                messages.append(assistant)
            line = json.dumps({"messages": messages}, ensure_ascii=rng.random() < 0.3) + "\n"
            sink.write(line)
            written += len(line.encode())
            examples += 1
    return examples
