"""Search modes: which signals a search ranks by.

A mode is one signal (``sparse``, ``dense``, ``bm25``), several joined by ``+`` (``bm25+sparse+dense``, fused), or
``hybrid``: every signal the index has, fused.
"""

from __future__ import annotations

from lsr.errors import LsrError

# Fusion sums the signals in this order (sparse then dense, as two-signal fusion always did).
SIGNALS = ("sparse", "dense", "bm25")
# Signals that score by shared terms: a document with none of the query's terms scores 0 and is never returned.
MATCHING_SIGNALS = ("sparse", "bm25")
HYBRID = "hybrid"
MODES = ("sparse", "dense", HYBRID, "bm25")


def parse_mode(mode: str) -> tuple[str, ...] | None:
    """The signals a mode names, in ``SIGNALS`` order; None for ``hybrid`` (the index decides)."""
    if mode == HYBRID:
        return None
    names = mode.split("+")
    unknown = [name for name in names if name not in SIGNALS]
    if unknown:
        raise LsrError(
            f"mode must be one of {', '.join(MODES)}, or signals joined by + (such as bm25+sparse+dense), got {mode!r}"
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise LsrError(f"mode {mode!r} names {', '.join(repeated)} more than once")
    return tuple(signal for signal in SIGNALS if signal in names)
