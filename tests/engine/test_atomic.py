"""Atomic writes: complete file or nothing, and no clobbering even when a file appears mid-write."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from bratseg import atomic
from bratseg.atomic import atomic_write


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_new_file_is_written_and_no_temporary_is_left(tmp_path: Path) -> None:
    with atomic_write(tmp_path / "a.bin", overwrite=False) as fh:
        fh.write(b"new")
    assert (tmp_path / "a.bin").read_bytes() == b"new" and _leftovers(tmp_path) == []
    assert (tmp_path / "a.bin").stat().st_nlink == 1  # the temporary link is gone


def test_existing_file_is_refused_before_writing(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"old")
    with pytest.raises(FileExistsError):
        with atomic_write(tmp_path / "a.bin", overwrite=False) as fh:
            fh.write(b"new")
    assert (tmp_path / "a.bin").read_bytes() == b"old" and _leftovers(tmp_path) == []


@pytest.mark.parametrize("links", [True, False], ids=["hard-link", "no-hard-links"])
def test_a_file_appearing_during_the_write_is_never_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, links: bool
) -> None:
    if not links:  # a file system without hard links: the exclusive-create fallback

        def no_link(*_args, **_kw):
            raise OSError(errno.EPERM, "hard links not supported")

        monkeypatch.setattr(atomic.os, "link", no_link)
    target = tmp_path / "mask.nii.gz"
    with pytest.raises(FileExistsError):
        with atomic_write(target, overwrite=False) as fh:
            fh.write(b"ours")
            target.write_bytes(b"theirs: written by another process meanwhile")
    assert target.read_bytes().startswith(b"theirs") and _leftovers(tmp_path) == []
    other = tmp_path / "other.bin"
    with atomic_write(other, overwrite=False) as fh:
        fh.write(b"ours")
    assert other.read_bytes() == b"ours" and _leftovers(tmp_path) == []


def test_overwrite_replaces_and_keeps_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    with atomic_write(target) as fh:
        fh.write(b"new")
    assert target.read_bytes() == b"new" and target.stat().st_mode & 0o777 == 0o640


def test_failure_inside_the_block_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with atomic_write(tmp_path / "a.bin", overwrite=False) as fh:
            fh.write(b"half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_refusal_does_not_rely_on_an_exists_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file may appear between any check and the final rename: the placing itself refuses.

    ``Path.exists`` answering False models that race (a check-then-replace would clobber).
    """
    target = tmp_path / "mask.nii.gz"
    target.write_bytes(b"theirs")
    monkeypatch.setattr(atomic.Path, "exists", lambda self: False)
    with pytest.raises(FileExistsError):
        with atomic_write(target, overwrite=False) as fh:
            fh.write(b"ours")
    monkeypatch.undo()
    assert target.read_bytes() == b"theirs" and _leftovers(tmp_path) == []
