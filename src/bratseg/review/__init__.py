"""Review of one case and its autosave: the GUI-free state a viewer's docks share.

- :class:`ReviewSession` (:mod:`bratseg.review.session`): probabilities, AI proposal, working
  labels and hand edits (overrides) that survive new settings and new model runs.
- :class:`SessionStore` (:mod:`bratseg.review.store`): atomic autosave per case, keyed by a
  hash of the case's image files, for recovery after a crash or a closed viewer; saves of one
  case are serialised and a save over another writer's newer one is refused
  (:class:`SessionConflictError`, :mod:`bratseg.review.concurrency`).
- Sign-off (:mod:`bratseg.review.signoff`): approve / reopen with reviewer, time, models and
  settings; an approved review is read-only.
- ``Worklist`` (:mod:`bratseg.review.worklist`): a folder of cases with their review status;
  :mod:`bratseg.review.batch`: batch segmentation (``segment_all``) and the export of the
  approved cases (``export_approved``), each written by :mod:`bratseg.review.export` with its
  provenance.
"""

from bratseg.review.case_identity import case_key
from bratseg.review.concurrency import SessionConflictError
from bratseg.review.model_info import ModelInfo
from bratseg.review.session import ReviewSession
from bratseg.review.signoff import STATUSES, ReviewLockedError, SignOff, default_reviewer
from bratseg.review.store import SavedSession, SessionStore
from bratseg.user_folders import sessions_dir

__all__ = [
    "STATUSES",
    "ModelInfo",
    "ReviewLockedError",
    "ReviewSession",
    "SavedSession",
    "SessionConflictError",
    "SessionStore",
    "SignOff",
    "case_key",
    "default_reviewer",
    "sessions_dir",
]
