"""User text shown as data: one safe line of a table, a CLI message, a PDF page.

Reviewer names, review statuses, notes, case and folder names come from users and file systems.
:func:`one_line` is the one function every place that shows them uses (the report tables and
PDF, the worklist and sessions tables, CLI lines): every control character (newline, carriage
return, tab, escape, the Unicode line and paragraph separators, bidirectional overrides) becomes a
space (and runs of white space around them one), so such text can neither split a table row or a CLI
line nor reorder what is shown. The PDF additionally draws every text literally, never as
matplotlib mathtext (:mod:`bratseg.report.pdf`).
"""

from __future__ import annotations

import unicodedata
from typing import Any

__all__ = ["one_line"]


def one_line(value: Any) -> str:
    """``str(value)`` as one printable line (control and format characters become spaces)."""
    text = str(value)
    if text.isprintable():
        return text
    cleaned = "".join(
        " " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in text
    )
    return " ".join(cleaned.split())
