"""Small helpers shared by CLI commands: JSON and table output, argument types."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from typing import Any

from bratseg.io import MODALITIES
from bratseg.text import one_line


def jsonable(obj: Any) -> Any:
    """``obj`` with NaN/infinity replaced by ``None`` and numpy scalars / paths made plain."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, int):
        return obj
    return str(obj)


def print_json(obj: Any) -> None:
    """Print exactly one JSON object (strict JSON: no NaN) on stdout."""
    sys.stdout.write(json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n")


def format_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None
) -> str:
    """Aligned text table (every cell shown as one line: :func:`bratseg.text.one_line`).

    Args:
        header: Column titles.
        rows: Cells as strings.
        align: One ``l`` or ``r`` per column (default: first column left, others right).
    """
    align = align or "l" + "r" * (len(header) - 1)
    rows = [[one_line(c) for c in r] for r in rows]
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            str(c).ljust(w) if align[i] == "l" else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def parse_mapping(items: Sequence[str] | None) -> dict[str, str]:
    """Parse ``--map CHANNEL=FILE`` options into a mapping for :func:`bratseg.io.load_case`."""
    from bratseg.errors import BratsInputError

    mapping: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise BratsInputError(
                f"--map expects CHANNEL=FILE (channels {', '.join((*MODALITIES, 'seg'))}), "
                f"got {item!r}"
            )
        mapping[key.strip()] = value.strip()
    return mapping


def warn(message: str) -> None:
    """One warning line on stderr."""
    sys.stderr.write(f"napari-brats: warning: {one_line(message)}\n")
