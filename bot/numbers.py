"""Numbers typed by people: ASCII digits within range, and nothing else.

``str.isdigit`` is true for "²" and "١٢", which ``int`` then refuses or reads as another number,
and ids past 2^63 overflow both SQLite and PostgreSQL. Every number from Slack goes through here.
"""

from __future__ import annotations

import re

DIGITS = re.compile(r"[0-9]{1,19}")
# The largest id the databases store (a signed 64-bit integer).
MAX_ID = 2**63 - 1


def whole_number(text: str, *, low: int = 0, high: int = MAX_ID) -> int | None:
    """``text`` as a whole number from ``low`` to ``high``, or None when it is anything else."""
    text = text.strip()
    if not DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if low <= value <= high else None


def reference_number(reference: str) -> int | None:
    """The id in ``#12`` or ``12``; 0 (which matches no row) for digits past any id, None for a name."""
    digits = reference.strip().removeprefix("#")
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    return whole_number(digits, low=1) or 0
