from collections.abc import Callable

class WordCache:
    """Exact token counts of texts, summed from their pieces (cut before a space and a non-space), which are cached."""

    def __init__(self, count_piece: Callable[[str], int], *, limit: int, max_piece_bytes: int) -> None: ...
    def count(self, text: str) -> int | None:
        """The text's count from its pieces; None when it has no UTF-8 form (lone surrogates: count it whole)."""

    def __len__(self) -> int: ...
