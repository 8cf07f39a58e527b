"""The word cache: compiled where the project was installed with a C compiler, in Python otherwise.

``_wordcache.c`` is the one that runs on any machine with a C compiler (setuptools builds it on
install). Without one, setuptools skips the optional extension and ``PythonWordCache`` gives the
same counts, slower; tests run both against the same cases. tokens.py explains why cutting a text
before every space that precedes a non-whitespace character keeps the counts exact.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from typing import Protocol

# Before a space that is followed by a non-whitespace character, except at the very start.
CUT = re.compile(r"(?!^)(?= \S)")


class WordCache(Protocol):
    def count(self, text: str) -> int | None:
        """The text's count from its pieces; None when it has no UTF-8 form (count it whole)."""

    def __len__(self) -> int: ...


def compiled() -> bool:
    return importlib.util.find_spec("bot.datasets._wordcache") is not None


def new_word_cache(count_piece: Callable[[str], int], *, limit: int, max_piece_bytes: int) -> WordCache:
    if compiled():
        from bot.datasets._wordcache import WordCache as CompiledWordCache

        return CompiledWordCache(count_piece, limit=limit, max_piece_bytes=max_piece_bytes)
    return PythonWordCache(count_piece, limit=limit, max_piece_bytes=max_piece_bytes)


class PythonWordCache(dict[str, int]):
    """The compiled cache's rules in Python: the same cuts and bound; a piece's size is measured in characters."""

    def __init__(self, count_piece: Callable[[str], int], *, limit: int, max_piece_bytes: int) -> None:
        if not (callable(count_piece) and 1 <= limit <= 2**20 and 1 <= max_piece_bytes <= 4096):
            raise ValueError("WordCache needs a callable, 1 <= limit <= 2**20 and 1 <= max_piece_bytes <= 4096")
        super().__init__()
        self._count_piece = count_piece
        self._limit = limit
        self._max_piece = max_piece_bytes

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
        if not text.isascii():
            try:
                text.encode()
            except UnicodeEncodeError:
                return None
        return sum(map(self.__getitem__, CUT.split(text))) if text else 0
