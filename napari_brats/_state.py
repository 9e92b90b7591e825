"""Per-viewer state shared by the docks: the case's review session, its labels layer, autosave.

The review rules live in the engine (:class:`bratseg.review.ReviewSession`: probabilities,
proposal, working labels, hand edits that survive settings and new model runs). This module only
keeps, per viewer, which session is open, which labels layer shows it, and the debounced autosave
(:class:`bratseg.review.SessionStore`) that the docks trigger after every stroke, slider move and
model run. The layer holds a view of :attr:`ReviewSession.labels`, so paint strokes land in it.
"""

from __future__ import annotations

import logging
import time
import weakref
from typing import Any

from psygnal import Signal

from bratseg.review import ModelInfo, ReviewSession, SessionStore, case_key

logger = logging.getLogger(__name__)

#: Kept for the docks' imports: the engine's review session is the case session.
CaseSession = ReviewSession

__all__ = ["AUTOSAVE_DELAY_MS", "CaseSession", "ModelInfo", "ViewerState", "viewer_state"]

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

    def __init__(self) -> None:
        self.session: ReviewSession | None = None
        self.layer: Any = None
        self.key: str | None = None
        self.store = SessionStore()
        self.autosave_enabled = True
        self.last_save_ms = 0.0
        self.settled_edits: int | None = None
        self._timer: Any = None

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
                logger.warning("cannot identify case %s for autosave: %s", session.case.case_id, exc)
        self.session_changed.emit(session)
        self.schedule_save()

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
        except OSError as exc:
            logger.warning("autosave of %s failed: %s", self.session.case.case_id, exc)
            return None
        self.last_save_ms = (time.perf_counter() - start) * 1000.0
        self.autosaved.emit(saved)
        return saved

    def saved_session_of(self, case: Any) -> Any:
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
        return not (saved is not None and saved.meta.get("exported")
                    and saved.meta.get("n_edited") == self.session.n_edited)


_STATES: weakref.WeakKeyDictionary[Any, ViewerState] = weakref.WeakKeyDictionary()


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
