"""The validator's hot tables: compiled where the project was installed with a C compiler, Python otherwise.

``_speedups.c`` is what runs on any machine with a C compiler (setuptools builds it on install).
Without one, setuptools skips the optional extension and the classes here do the same work, slower;
tests run both against the same cases. tokens.py explains why cutting a text before every space
that precedes a non-whitespace character keeps the counts exact.
"""

from __future__ import annotations

import importlib.util
import re
from array import array
from collections.abc import Callable, Iterator
from typing import Protocol, Self

# Before a space that is followed by a non-whitespace character, except at the very start.
CUT = re.compile(r"(?!^)(?= \S)")


class WordCache(Protocol):
    def count(self, text: str) -> int | None:
        """The text's count; None when it has no UTF-8 form (count it whole)."""

    def __len__(self) -> int: ...


class LineDigests(Protocol):
    def first_or_add(self, digest: int, line: int) -> int:
        """The first line with this digest; records ``line`` (and returns it) when the digest is new."""

    def absorb(self, later: Self, offset: int) -> list[tuple[int, int]]:
        """Add a later range's digests, its lines moved down by ``offset``; (line, first line) of the repeats."""

    def __len__(self) -> int: ...


def compiled() -> bool:
    return importlib.util.find_spec("bot.datasets._speedups") is not None


def new_word_cache(
    count_piece: Callable[[str], int], *, limit: int, max_piece_bytes: int, text_limit: int, text_chars: int
) -> WordCache:
    sizes = {"limit": limit, "max_piece_bytes": max_piece_bytes, "text_limit": text_limit, "text_chars": text_chars}
    if compiled():
        from bot.datasets import _speedups

        return _speedups.WordCache(count_piece, **sizes)
    return PythonWordCache(count_piece, **sizes)


def new_line_digests() -> LineDigests:
    if compiled():
        from bot.datasets import _speedups

        return _speedups.LineDigests()
    return PythonLineDigests()


class PythonWordCache(dict[str, int]):
    """The compiled WordCache's rules in Python: the same cuts and bounds; a piece is measured in characters."""

    def __init__(
        self, count_piece: Callable[[str], int], *, limit: int, max_piece_bytes: int, text_limit: int, text_chars: int
    ) -> None:
        if not (
            callable(count_piece)
            and 1 <= limit <= 2**20
            and 1 <= max_piece_bytes <= 4096
            and 1 <= text_limit <= 2**20
            and text_chars >= 1
        ):
            raise ValueError(
                "WordCache needs a callable, 1 <= limit <= 2**20, 1 <= max_piece_bytes <= 4096, "
                "1 <= text_limit <= 2**20 and text_chars >= 1"
            )
        super().__init__()
        self._count_piece = count_piece
        self._limit = limit
        self._max_piece = max_piece_bytes
        self._texts: dict[str, int] = {}
        self._text_limit = text_limit
        self._text_chars = text_chars
        self._text_chars_used = 0
        self._seen_once: set[int] = set()

    def __missing__(self, piece: str) -> int:
        tokens = self._count_piece(piece)
        if tokens < 0:
            raise ValueError("the tokenizer returned a negative count")
        if len(piece) <= self._max_piece:
            if len(self) >= self._limit:
                self.clear()
            self[piece] = tokens
        return tokens

    def count(self, text: str) -> int | None:
        if not isinstance(text, str):
            raise TypeError("count() takes a str")
        cacheable = len(text) <= self._text_chars
        if cacheable and text in self._texts:
            return self._texts[text]
        if not text.isascii():
            try:
                text.encode()
            except UnicodeEncodeError:
                return None
        tokens = sum(map(self.__getitem__, CUT.split(text))) if text else 0
        if cacheable:
            self._remember_text(text, tokens)
        return tokens

    def _remember_text(self, text: str, tokens: int) -> None:
        """Keep a text's count the second time it is seen: most texts are unique, the others recur a lot."""
        key = hash(text)
        if key not in self._seen_once:
            if len(self._seen_once) >= 8 * self._text_limit:
                self._seen_once.clear()
            self._seen_once.add(key)
            return
        if len(self._texts) >= self._text_limit or self._text_chars_used + len(text) > self._text_chars:
            self._texts.clear()
            self._text_chars_used = 0
        self._text_chars_used += len(text)
        self._texts[text] = tokens


class PythonLineDigests:
    """The compiled LineDigests in Python: an open-addressing table of 64-bit digests in flat arrays.

    About 24 bytes a line instead of the ~100 a dict entry costs, so duplicate detection stays small
    on files of hundreds of megabytes.
    """

    def __init__(self, capacity: int = 1 << 12) -> None:
        self._keys = array("Q", bytes(8 * capacity))
        self._lines = array("I", bytes(4 * capacity))
        self._mask = capacity - 1
        self._size = 0

    def first_or_add(self, digest: int, line: int) -> int:
        digest = digest or 1  # 0 marks an empty slot
        slot = digest & self._mask
        keys = self._keys
        while True:
            key = keys[slot]
            if key == digest:
                return self._lines[slot]
            if key == 0:
                break
            slot = (slot + 1) & self._mask
        keys[slot] = digest
        self._lines[slot] = line
        self._size += 1
        if self._size * 2 > len(keys):
            self._grow()
        return line

    def absorb(self, later: PythonLineDigests, offset: int) -> list[tuple[int, int]]:
        if not isinstance(later, PythonLineDigests):
            raise TypeError("absorb(later, offset) takes LineDigests and an integer")
        repeats = []
        for digest, line in sorted(later._items(), key=lambda item: item[1]):
            first = self.first_or_add(digest, line + offset)
            if first != line + offset:
                repeats.append((line + offset, first))
        return repeats

    def _grow(self) -> None:
        old = list(self._items())
        capacity = len(self._keys) * 2
        self._keys = array("Q", bytes(8 * capacity))
        self._lines = array("I", bytes(4 * capacity))
        self._mask, self._size = capacity - 1, 0
        for digest, line in old:
            self.first_or_add(digest, line)

    def _items(self) -> Iterator[tuple[int, int]]:
        for key, line in zip(self._keys, self._lines, strict=True):
            if key:
                yield key, line

    def __len__(self) -> int:
        return self._size
