"""Review of one case and its autosave: the GUI-free state a viewer's docks share.

- :class:`ReviewSession` (:mod:`bratseg.review.session`): probabilities, AI proposal, working
  labels and hand edits (overrides) that survive new settings and new model runs.
- :class:`SessionStore` (:mod:`bratseg.review.store`): atomic autosave per case, keyed by a
  hash of the case's image files, for recovery after a crash or a closed viewer.
"""

from bratseg.review.session import ModelInfo, ReviewSession
from bratseg.review.store import SavedSession, SessionStore, case_key, sessions_dir

__all__ = ["ModelInfo", "ReviewSession", "SavedSession", "SessionStore", "case_key", "sessions_dir"]
