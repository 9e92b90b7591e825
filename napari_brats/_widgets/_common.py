"""Small helpers shared by the docks (error dialogs, the current session)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bratseg.errors import BratsInputError

if TYPE_CHECKING:
    from qtpy.QtWidgets import QTableWidget

    from bratseg.review import ReviewSession

logger = logging.getLogger(__name__)

#: Rows of the volume tables (the keys of :func:`bratseg.metrics.tumour_volumes_ml`):
#: tissues NCR, ED, ET, then regions TC, WT.
VOLUME_ROWS = ("ncr", "ed", "et", "tc", "wt")


def show_input_error(exc: BaseException) -> str:
    """Show ``exc`` to the user as a napari error notification; return the message shown.

    A :class:`BratsInputError` is shown as its one-line message; anything else with its type.
    """
    from napari.utils.notifications import show_error

    if isinstance(exc, BratsInputError):
        message = str(exc)
    else:
        message = f"{type(exc).__name__}: {exc}"
        logger.error("unexpected error", exc_info=exc)
    show_error(message)
    return message


def fmt_ml(value: float) -> str:
    """A volume in mL with two decimals."""
    return f"{value:.2f}"


def spacing_of(session: ReviewSession) -> tuple[float, float, float]:
    """Voxel spacing (mm, engine order X, Y, Z) of a session's case."""
    sx, sy, sz = (float(s) for s in session.case.spacing)
    return sx, sy, sz


def set_column_tips(table: QTableWidget, tips: Sequence[str]) -> None:
    """Give a table's column headers their tooltips (after its header labels were set)."""
    for column, tip in enumerate(tips):
        item = table.horizontalHeaderItem(column)
        if item is not None:
            item.setToolTip(tip)


def hide_row_numbers(table: QTableWidget) -> None:
    """Hide a table's row-number column."""
    header = table.verticalHeader()
    if header is not None:  # Qt's stubs type every header as optional
        header.setVisible(False)
