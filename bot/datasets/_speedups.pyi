from collections.abc import Callable

class WordCache:
    """Exact token counts, remembered by word (pieces cut before a space and a non-space) and by recurring text."""

    def __init__(
        self, count_piece: Callable[[str], int], *, limit: int, max_piece_bytes: int, text_limit: int, text_chars: int
    ) -> None: ...
    def count(self, text: str) -> int | None:
        """The text's count; None when it has no UTF-8 form (lone surrogates: count it whole)."""

    def __len__(self) -> int: ...

class LineDigests:
    """64-bit digest of each example line -> the first line it was seen on."""

    def first_or_add(self, digest: int, line: int) -> int: ...
    def absorb(self, later: LineDigests, offset: int) -> list[tuple[int, int]]: ...
    def __len__(self) -> int: ...
