"""Per-viewer state shared by the docks: the case's review session, its labels layer, autosave.

The review rules live in the engine (:class:`bratseg.review.ReviewSession`: probabilities,
proposal, working labels, hand edits that survive settings and new model runs). This module only
keeps, per viewer, the cases its layers show (:mod:`napari_brats._cases`: layer metadata only names
them), which session is open, which labels layer shows it, and the debounced autosave
(:class:`bratseg.review.SessionStore`) that the docks trigger after every stroke, slider move and
model run. The layer holds a view of :attr:`ReviewSession.labels`, so paint strokes land in it.
An approved session (:mod:`bratseg.review.signoff`) makes its layer read-only until reopened.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from psygnal import Signal

from bratseg.errors import BratsInputError
from bratseg.predictor import ModelCache
from bratseg.review import ModelInfo, ReviewSession, SavedSession, SessionStore, case_key
from bratseg.review.concurrency import SessionConflictError

from ._cases import claim, ref_of_layer

if TYPE_CHECKING:
    from bratseg.io import Case

logger = logging.getLogger(__name__)

__all__ = ["AUTOSAVE_DELAY_MS", "ModelInfo", "ViewerState", "find_case", "viewer_state"]

#: Quiet time after the last change before the autosave runs (one save per burst of strokes).
AUTOSAVE_DELAY_MS = 400


class ViewerState:
    """The review session of one viewer, its labels layer, and signals the docks listen to."""

    #: Emitted with the new :class:`ReviewSession` (or None) when a case is segmented or closed.
    session_changed = Signal(object)
    #: Emitted after the working labels changed (postprocessing update or edit).
    labels_changed = Signal()
    #: Emitted when the set of available models may have changed (after training).
    models_changed = Signal()
    #: Emitted with the saved session's description after each autosave.
    autosaved = Signal(object)
    #: Emitted with the session after it was approved or reopened.
    signoff_changed = Signal(object)
    #: Emitted with the session after its needs-review assessment was redone and recorded.
    assessed = Signal(object)

    def __init__(self) -> None:
        self.session: ReviewSession | None = None
        self.layer: Any = None
        self.key: str | None = None
        self.store = SessionStore()
        self.autosave_enabled = True
        self.last_save_ms = 0.0
        self.settled_edits: int | None = None
        self._timer: Any = None
        #: Edit trackers of the labels layers shown, by ``id(layer)`` (one per layer).
        self.trackers: dict[int, Any] = {}
        #: True while :meth:`commit` refreshes the layer (the edit tracker then ignores it).
        self.committing = False
        #: Networks loaded by this viewer's runs, kept for the next (Segment, Worklist batch).
        self.models = ModelCache()
        #: The cases this viewer's layers show, by the reference in their metadata.
        self.cases: dict[str, Case] = {}

    # ------------------------------------------------------------------ cases
    def case_of(self, layer: Any) -> Case | None:
        """The :class:`bratseg.io.Case` a layer (or layer-data kwargs) shows, held here from now
        on; None when the layer names no live case."""
        ref = ref_of_layer(layer)
        if ref is None:
            return None
        case = self.cases.get(ref) or claim(ref)
        if case is not None:
            self.cases[ref] = case
        return case

    def adopt(self, layer_data: Iterable[tuple[Any, dict[str, Any], str]]) -> Case | None:
        """The case behind reader output that this viewer is about to show, held here."""
        for _data, kwargs, _kind in layer_data:
            case = self.case_of(kwargs)
            if case is not None:
                return case
        return None

    def find_case(self, layers: Any) -> Case | None:
        """The case behind the selected layer, else behind the last case layer of ``layers``
        (the viewer's layer list). Cases no layer names any more are let go."""
        shown = {ref for layer in layers if (ref := ref_of_layer(layer)) is not None}
        for ref in [ref for ref in self.cases if ref not in shown]:
            del self.cases[ref]
        for layer in list(layers.selection) + list(reversed(list(layers))):
            case = self.case_of(layer)
            if case is not None:
                return case
        return None

    def set_session(self, session: ReviewSession | None, layer: Any = None) -> None:
        """Replace the current session (and the layer showing it) and notify the docks."""
        self.session = session
        self.layer = layer
        self.key = None
        self.settled_edits = None
        self.autosave_enabled = True
        if session is not None and getattr(session.case, "files", None):
            try:
                self.key = case_key(session.case.files)
            except OSError as exc:  # files gone: the session still works, it is not saved
                logger.warning(
                    "cannot identify case %s for autosave: %s", session.case.case_id, exc
                )
        self.apply_lock()
        self.session_changed.emit(session)
        self.schedule_save()

    def commit(self, refresh: bool = True, save: bool = True) -> None:
        """The one path after the session's labels changed: the layer shows them, the docks hear
        it once (:attr:`labels_changed`), the autosave is scheduled.

        Args:
            refresh: Redraw the layer (its data is a view of the session's labels).
            save: Schedule the autosave (False when the saved review was just discarded).
        """
        if refresh and self.layer is not None:
            self.committing = True
            try:
                self.layer.refresh()
            finally:
                self.committing = False
            tracker = self.trackers.get(id(self.layer))
            if tracker is not None:
                tracker.resync()
        self.labels_changed.emit()
        if save:
            self.schedule_save()

    # ------------------------------------------------------------------ sign-off
    @property
    def approved(self) -> bool:
        """Whether the open review is approved (read-only)."""
        return self.session is not None and self.session.approved

    def apply_lock(self) -> None:
        """The labels layer is editable exactly while the review is not approved."""
        if self.layer is not None and self.session is not None:
            self.layer.editable = not self.session.approved

    def approve(self, reviewer: str | None = None) -> Any:
        """Approve the open review (:meth:`ReviewSession.approve`), save it, lock its layer.

        Returns:
            The :class:`bratseg.review.SignOff`.

        Raises:
            bratseg.review.ReviewLockedError: No review open, or it is approved already.
        """
        return self._sign("approve", reviewer)

    def reopen(self, reviewer: str | None = None) -> Any:
        """Reopen the approved review (recorded), save it, make its layer editable again."""
        return self._sign("reopen", reviewer)

    def _sign(self, action: str, reviewer: str | None) -> Any:
        from bratseg.review import ReviewLockedError

        if self.session is None:
            raise ReviewLockedError("no review is open: segment or open a case first")
        entry = getattr(self.session, action)(reviewer)
        self.save_now()
        self.apply_lock()
        self.signoff_changed.emit(self.session)
        return entry

    # ------------------------------------------------------------------ autosave
    def schedule_save(self) -> None:
        """Save the session after :data:`AUTOSAVE_DELAY_MS` without further changes."""
        if not self.autosave_enabled or self.session is None or self.key is None:
            return
        if self._timer is None:
            from qtpy.QtCore import QTimer

            self._timer = QTimer()
            self._timer.setSingleShot(True)
            self._timer.setInterval(AUTOSAVE_DELAY_MS)
            self._timer.timeout.connect(self.save_now)
        self._timer.start()

    def save_now(self, exported: bool | None = None) -> Any:
        """Save the session at once (atomic); returns the saved description or None."""
        if self._timer is not None:
            self._timer.stop()
        if self.session is None or self.key is None:
            return None
        start = time.perf_counter()
        try:
            saved = self.store.save(self.session, self.key, exported=exported)
        except SessionConflictError as exc:  # another viewer or process saved this case meanwhile
            saved = self._resolve_conflict(exc, exported)
            if saved is None:
                return None
        except BratsInputError as exc:  # e.g. a label value painted that BraTS does not have
            from ._widgets._common import show_input_error

            show_input_error(exc)
            return None
        except OSError as exc:
            logger.warning("autosave of %s failed: %s", self.session.case.case_id, exc)
            return None
        self.last_save_ms = (time.perf_counter() - start) * 1000.0
        self.autosaved.emit(saved)
        return saved

    def _resolve_conflict(self, exc: SessionConflictError, exported: bool | None) -> Any:
        """Ask whether to save this viewer's edits over the newer save; autosave stays off
        (and nothing is written) unless the user says so."""
        from qtpy.QtWidgets import QMessageBox

        self.autosave_enabled = False
        answer = QMessageBox.question(
            None,
            "Review changed elsewhere",
            f"{exc.reason}.\n\nSave this viewer's review over it (the other one's edits are "
            "then replaced)? No keeps the saved review as it is and stops autosaving here.",
        )
        if answer != QMessageBox.StandardButton.Yes or self.session is None:
            logger.warning("autosave of %s stopped: %s", exc.case_id, exc)
            return None
        self.autosave_enabled = True
        return self.store.save(self.session, self.key, exported=exported, replace=True)

    def saved_session_of(self, case: Case) -> SavedSession | None:
        """The autosaved review of ``case`` (same image files), or None."""
        try:
            return self.store.get(case_key(case.files))
        except (OSError, KeyError):
            return None

    def has_unexported_edits(self) -> bool:
        """True when the open session holds hand edits that were not exported."""
        if self.session is None or self.session.n_edited == 0:
            return False
        if self.settled_edits == self.session.n_edited:  # the user already decided about them
            return False
        saved = self.store.get(self.key) if self.key else None
        return not (
            saved is not None
            and saved.meta.get("exported")
            and saved.meta.get("n_edited") == self.session.n_edited
        )


_STATES: weakref.WeakKeyDictionary[Any, ViewerState] = weakref.WeakKeyDictionary()


def find_case(viewer: Any) -> Case | None:
    """The :class:`bratseg.io.Case` behind ``viewer``'s selected layer, else its last case layer."""
    return viewer_state(viewer).find_case(viewer.layers)


def viewer_state(viewer: Any) -> ViewerState:
    """The :class:`ViewerState` of ``viewer`` (created on first use).

    Raises:
        TypeError: ``viewer`` is None or cannot be weakly referenced (a dock needs its viewer).
    """
    if viewer is None:
        raise TypeError("a napari viewer is needed")
    state = _STATES.get(viewer)
    if state is None:
        state = ViewerState()
        _STATES[viewer] = state
    return state
