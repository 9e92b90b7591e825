"""Sign-off of a reviewed case: who approved (or reopened) it, when, and what exactly.

An approval freezes the review: it records the reviewer, the time (ISO 8601, UTC), the models
that produced the proposal (names and sha256), the postprocessing settings in force and the
hand-edited voxel counts per label. While the last sign-off of a session is an approval, the
session refuses every change (:class:`ReviewLockedError`) until it is reopened, which is recorded
the same way. The list of sign-offs is the case's sign-off history; it is saved with the session
(:mod:`bratseg.review.store`) and written into the export's provenance.

Review status of a case (:data:`STATUSES`): ``new`` (never segmented), ``segmented`` (AI
proposal, no hand edits), ``edited`` (hand edits), ``approved`` (signed off, read-only).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import getpass
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bratseg.errors import BratsInputError

if TYPE_CHECKING:
    from bratseg.review.session import ReviewSession

logger = logging.getLogger(__name__)

#: Review status of a case, in the order a case goes through them.
STATUSES: tuple[str, str, str, str] = ("new", "segmented", "edited", "approved")
#: The two sign-off actions.
APPROVE, REOPEN = "approve", "reopen"


class ReviewLockedError(BratsInputError):
    """A change was asked of an approved review (reopen it first)."""


def default_reviewer() -> str:
    """The operating-system user name (``"unknown"`` when the system cannot tell)."""
    try:
        return getpass.getuser() or "unknown"
    except (KeyError, OSError, ImportError):  # no passwd entry, no USER variable
        return "unknown"


def utc_now() -> str:
    """Current time, ISO 8601 in UTC, to the second (e.g. ``2026-12-02T05:00:00+00:00``)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class SignOff:
    """One sign-off event of a review.

    Attributes:
        action: :data:`APPROVE` or :data:`REOPEN`.
        reviewer: Who signed (default: the OS user).
        time: When, ISO 8601 UTC.
        models: Names of the models behind the AI proposal.
        sha256: Their checkpoint sha256, in the same order.
        postprocess: The postprocessing settings in force (``PostprocessConfig.to_dict()``).
        edited_voxels: Hand-edited voxels per label, ``{tissue: {"added": n, "removed": m}}``.
        n_edited: Voxels whose label differs from the AI proposal.
        note: Free text (optional).
    """

    action: str
    reviewer: str
    time: str
    models: list[str] = field(default_factory=list)
    sha256: list[str] = field(default_factory=list)
    postprocess: dict[str, Any] = field(default_factory=dict)
    edited_voxels: dict[str, dict[str, int]] = field(default_factory=dict)
    n_edited: int = 0
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SignOff:
        """Inverse of :meth:`to_dict` (unknown keys ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def line(self) -> str:
        """One line for a status bar: ``approved by ana at 2026-...``."""
        from bratseg.text import one_line

        verb = "approved" if self.action == APPROVE else "reopened"
        return one_line(f"{verb} by {self.reviewer} at {self.time}")


def sign(
    session: ReviewSession, action: str, reviewer: str | None = None, note: str = ""
) -> SignOff:
    """A sign-off of ``session`` as it is now (models, settings, edit counts).

    Args:
        session: A :class:`bratseg.review.ReviewSession`.
        action: :data:`APPROVE` or :data:`REOPEN`.
        reviewer: Who signs; empty or None means :func:`default_reviewer`.
        note: Free text.
    """
    return SignOff(
        action=action,
        reviewer=(reviewer or "").strip() or default_reviewer(),
        time=utc_now(),
        models=list(session.model.names),
        sha256=list(session.model.sha256),
        postprocess=session.config.to_dict(),
        edited_voxels=session.edited_voxels(),
        n_edited=session.n_edited,
        note=note,
    )


def is_approved(signoffs: list[SignOff]) -> bool:
    """Whether the last sign-off of a history is an approval."""
    return bool(signoffs) and signoffs[-1].action == APPROVE


def review_status(signoffs: list[SignOff], n_edited: int) -> str:
    """Status of a segmented review: ``approved`` while its last sign-off is an approval, else
    ``edited`` when some working label differs from the AI proposal, else ``segmented``."""
    if is_approved(signoffs):
        return "approved"
    return "edited" if n_edited > 0 else "segmented"


def status_of(meta: dict[str, Any] | None) -> str:
    """Review status of a saved session's ``session.json`` (``None``: never segmented)."""
    if meta is None:
        return "new"
    history = [SignOff.from_dict(s) for s in meta.get("signoffs") or []]
    return review_status(history, int(meta.get("n_edited", 0)))
