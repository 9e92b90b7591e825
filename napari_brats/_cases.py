"""The live :class:`bratseg.io.Case` objects behind the plugin's layers, kept out of layer metadata.

A layer's ``metadata["bratseg"]`` holds only plain, serialisable facts (case id, folder, affine,
header, role). Saving a layer or a napari project therefore never pickles a volume, and napari's
shallow metadata copy of a duplicated layer shares no live object. The layer names its case by a
reference string (``metadata["bratseg"]["case_ref"]``) that this module resolves:

- every case whose layers were built is registered here under its reference, weakly;
- a case built by the reader (no viewer at hand) is held strongly in a short queue of unclaimed
  cases until a viewer's state claims it (:meth:`napari_brats._state.ViewerState.case_of`); the
  viewer's state then holds it for as long as some layer of that viewer names it.
"""

from __future__ import annotations

import itertools
import logging
import weakref
from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bratseg.io import Case

logger = logging.getLogger(__name__)

#: Key of the case reference in ``layer.metadata["bratseg"]``.
CASE_REF = "case_ref"
#: Cases built by the reader that no viewer claimed yet, held strongly (most recent kept). Their
#: image arrays are shared with their layers, so holding one costs little while it is shown.
MAX_UNCLAIMED = 4

_LIVE: weakref.WeakValueDictionary[str, Case] = weakref.WeakValueDictionary()
_UNCLAIMED: OrderedDict[str, Case] = OrderedDict()
_NUMBERS = itertools.count(1)


def case_ref(case: Case) -> str:
    """The reference naming ``case`` in layer metadata (made and registered on first use)."""
    for ref, live in list(_LIVE.items()):
        if live is case:
            return ref
    ref = f"{case.case_id}#{next(_NUMBERS)}"
    _LIVE[ref] = case
    _UNCLAIMED[ref] = case
    while len(_UNCLAIMED) > MAX_UNCLAIMED:
        dropped, _ = _UNCLAIMED.popitem(last=False)
        logger.debug("case %s no longer held for an unclaimed layer", dropped)
    return ref


def claim(ref: str) -> Case | None:
    """The live case named ``ref`` (None when gone); the caller now holds it."""
    case = _LIVE.get(ref)  # before the queue lets go of it
    _UNCLAIMED.pop(ref, None)
    return case


def ref_of_layer(layer: Any) -> str | None:
    """The case reference in a napari layer's (or a layer-data kwargs') metadata, or None."""
    metadata = (
        layer.get("metadata") if isinstance(layer, dict) else getattr(layer, "metadata", None)
    )
    meta = (metadata or {}).get("bratseg") or {}
    ref = meta.get(CASE_REF)
    return ref if isinstance(ref, str) else None


def case_of_layer_data(layer_data: Iterable[tuple[Any, dict[str, Any], str]]) -> Case | None:
    """The case behind reader output (layer-data tuples), claimed by the caller; None if none."""
    for _data, kwargs, _kind in layer_data:
        ref = ref_of_layer(kwargs)
        if ref is not None:
            return claim(ref)
    return None


def open_cases() -> list[Case]:
    """The cases whose layers were built in this process and are still held by something."""
    return list(_LIVE.values())
