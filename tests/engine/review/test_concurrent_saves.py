"""Two writers of one case's review (probe 5.24): never a silent loss of hand edits.

Two real processes restore the same saved review of a real BraTS case, paint disjoint blocks
(one NCR, one ET) and autosave after every stroke. Either both edit sets end up saved, or the
writer whose edits are not saved was told (:class:`SessionConflictError`); before, the last
writer silently replaced the other one's edits.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest

from bratseg.review import SessionConflictError, SessionStore, case_key

#: Strokes (and autosaves) per process, as in the probe.
SAVES = 60
#: Disjoint blocks, far from the tumour: process -> (x range start, label).
BLOCKS = {0: (40, 1), 1: (180, 4)}


def _block(start: int, stroke: int | None = None) -> tuple[slice, slice, slice]:
    """The process's block; one 2-voxel-thick z slab of it per stroke (all of it when None)."""
    z = slice(40, 40 + 2 * SAVES) if stroke is None else slice(40 + 2 * stroke, 42 + 2 * stroke)
    return slice(start, start + 10), slice(100, 110), z


def _writer(case_dir: str, sessions: str, which: int, ready, go, results) -> None:
    """Restore the review, wait for the other writer, paint and save one stroke at a time."""
    from bratseg.io import load_case

    case = load_case(case_dir, load_seg=False)
    store = SessionStore(sessions)
    key = case_key(case.files)
    session = store.restore(store.get(key), case)
    start, label = BLOCKS[which]
    ready.wait()
    go.wait()
    saved = told = 0
    for stroke in range(SAVES):
        session.labels[_block(start, stroke)] = label
        try:
            store.save(session, key)
            saved += 1
        except SessionConflictError as exc:
            told += 1
            results.put((which, saved, told, str(exc)))
            return
    results.put((which, saved, told, ""))


@pytest.mark.slow
def test_two_processes_autosaving_one_case_never_lose_edits_silently(
    brats2018_case_dir: Path, tmp_path: Path
) -> None:
    from expert_review import expert_session

    from bratseg.io import load_case

    case_dir = tmp_path / brats2018_case_dir.name
    case_dir.mkdir()
    for f in brats2018_case_dir.iterdir():
        os.symlink(f, case_dir / f.name)
    sessions = tmp_path / "sessions"
    store = SessionStore(sessions)
    first = store.save(expert_session(load_case(case_dir)))

    ctx = multiprocessing.get_context("spawn")  # no torch/OpenMP state forked into the writers
    ready, go, results = ctx.Barrier(3), ctx.Barrier(3), ctx.Queue()
    writers = [
        ctx.Process(target=_writer, args=(str(case_dir), str(sessions), w, ready, go, results))
        for w in BLOCKS
    ]
    for p in writers:
        p.start()
    ready.wait(timeout=240)  # both restored the same save
    go.wait(timeout=60)
    outcome = {}
    for _ in writers:
        which, saved, told, message = results.get(timeout=240)
        outcome[which] = (saved, told, message)
    for p in writers:
        p.join(timeout=60)
        assert p.exitcode == 0

    final = store.get(first.key)
    labels, _proposal, _overrides = store.load_arrays(final)
    for which, (start, label) in BLOCKS.items():
        saved, told, message = outcome[which]
        kept = bool((labels[_block(start)] == label).all())
        assert kept or told, f"writer {which}: edits lost without a word"
        if told:
            assert "NOT saved" in message and "another viewer or process" in message
    assert sum(not told for _s, told, _m in outcome.values()) >= 1  # someone saved everything
    assert final.meta["generation"] == first.meta["generation"] + sum(
        s for s, _t, _m in outcome.values()
    )  # every save a generation of its own: none raced another


def test_the_second_viewer_is_told_and_may_keep_its_edits(
    brats2018_case_dir: Path, tmp_path: Path
) -> None:
    from expert_review import expert_session

    from bratseg.io import load_case

    case = load_case(brats2018_case_dir)
    store = SessionStore(tmp_path / "sessions")
    key = store.save(expert_session(case)).key
    one = store.restore(store.get(key), case)
    two = store.restore(store.get(key), case)
    one.labels[_block(40)] = 1
    version = store.save(one, key).version
    two.labels[_block(180)] = 4
    with pytest.raises(SessionConflictError, match="NOT saved") as info:
        store.save(two, key)
    assert info.value.mine == 1 and info.value.theirs == 2
    assert store.get(key).version == version  # nothing written by the refused save
    assert not store.mark_exported(key, tmp_path / "x.nii.gz", two.saved_version)  # stale
    store.save(two, key, replace=True)  # the user chose to keep the second viewer's edits
    labels, _p, _o = store.load_arrays(store.get(key))
    assert (labels[_block(180)] == 4).all() and not (labels[_block(40)] == 1).any()
    with pytest.raises(SessionConflictError):  # and now the first viewer is told in turn
        store.save(one, key)
    assert np.array_equal(store.load_arrays(store.get(key))[0], labels)
