"""Several outputs all or nothing (DEF-9), SIGTERM cleans up like Ctrl-C and the leftovers of
killed runs are removed by the next run (DEF-13)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import bratseg
from bratseg.atomic import atomic_write, atomic_write_all, remove_stale_temporaries
from bratseg.cli._signals import Terminated, sigterm_as_interrupt
from bratseg.errors import BratsInputError
from bratseg.io import write_nifti_atomic

#: The source tree of the ``bratseg`` under test (child processes run the same code).
SRC = Path(bratseg.__file__).resolve().parents[1]
REPO = Path(__file__).resolve().parents[2]

posix_signals = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signal delivery")

#: A process id no Linux system hands out (pid_max is at most 2^22).
DEAD_PID = 99_999_999


def _everything(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _age(path: Path, seconds: float) -> None:
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))


def _approved_worklist(case_dir: Path, standin, tmp_path: Path) -> Path:
    """A worklist folder with one case ``A`` segmented by the stand-in and approved (the caller
    points ``BRATSEG_SESSIONS`` at a temporary folder first)."""
    from bratseg.cli.main import main

    root = tmp_path / "cases"
    (root / "A").mkdir(parents=True)
    for f in case_dir.iterdir():
        os.symlink(f, root / "A" / f.name.replace("Brats18_2013_2_1", "A"))
    model = standin.save_standin(tmp_path / "standin.pt")
    assert main(["worklist", str(root), "--segment-all", "--model", str(model), "--json"]) == 0
    assert main(["worklist", str(root), "--approve", "A", "--reviewer", "Dr A", "--json"]) == 0
    return root


# --------------------------------------------------------------------------- DEF-9


def test_all_or_nothing_when_a_later_name_is_taken_meanwhile(tmp_path: Path) -> None:
    """The loser of an output race leaves nothing, not even its other file (probe 4.8)."""
    first, second = tmp_path / "labels.nii.gz", tmp_path / "probs.nii.gz"
    with pytest.raises(FileExistsError):
        with atomic_write_all([first, second], overwrite=False) as (fh1, fh2):
            fh1.write(b"labels")
            fh2.write(b"probabilities")
            first.write_bytes(b"the winner's labels")  # another process wins the race
    assert first.read_bytes() == b"the winner's labels"
    assert _everything(tmp_path) == ["labels.nii.gz"]


def test_predict_writes_no_probabilities_when_the_label_map_fails(
    brats2018_case, tmp_path: Path
) -> None:
    """``predict --probabilities``: a label map that cannot be written takes the probabilities
    with it (probes 3.16 and 4.8: the label name appeared after the command's checks)."""
    from bratseg.cli.predict import _write_outputs

    case = brats2018_case
    labels = case.seg
    probs = np.stack([labels > 0, np.isin(labels, (1, 4)), labels == 4]).astype(np.float32)
    pred = SimpleNamespace(labels=labels, region_probs=probs, convention="2021")
    out, prob = tmp_path / "x.nii.gz", tmp_path / "p.nii.gz"
    out.write_bytes(b"another run's result")
    with pytest.raises(BratsInputError, match="exists"):
        _write_outputs(case, pred, out, prob, overwrite=False)
    assert out.read_bytes() == b"another run's result"
    assert _everything(tmp_path) == ["x.nii.gz"]
    out.unlink()
    _write_outputs(case, pred, out, prob, overwrite=False)  # and both when both can be written
    assert _everything(tmp_path) == ["p.nii.gz", "x.nii.gz"]


# --------------------------------------------------------------------------- DEF-13: leftovers


def test_stale_temporaries_of_a_killed_run_are_removed_by_the_next_write(tmp_path: Path) -> None:
    out = tmp_path / "out.nii.gz"
    dead = tmp_path / f".out.nii.gz.{DEAD_PID}-e803dd97.tmp"  # a kill -9'd writer's (probe 4.2)
    old_style = tmp_path / ".out.nii.gz.17432e32.tmp"  # named by an older version, a day old
    live = tmp_path / f".out.nii.gz.{os.getpid()}-0badc0de.tmp"  # a writer still running
    recent = tmp_path / f".out.nii.gz.{DEAD_PID}-00000001.tmp"  # within the grace period
    other = tmp_path / f".other.nii.gz.{DEAD_PID}-e803dd97.tmp"  # another destination's
    for path in (dead, old_style, live, recent, other):
        path.write_bytes(b"partial")
    for path in (dead, live, other):
        _age(path, 3600)
    _age(old_style, 2 * 24 * 3600)
    labels = np.zeros((4, 4, 4), dtype=np.uint8)
    write_nifti_atomic(labels, np.eye(4), None, out)
    assert _everything(tmp_path) == sorted([out.name, live.name, recent.name, other.name])


def test_stale_partial_export_folders_are_removed(tmp_path: Path) -> None:
    stale = tmp_path / f".A.partial-{DEAD_PID}-6p7ayrgc"
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "A_t1.nii.gz").write_bytes(b"x" * 100)
    _age(stale, 3600)
    live = tmp_path / f".A.partial-{os.getpid()}-abcdefgh"
    live.mkdir()
    _age(live, 3600)
    assert remove_stale_temporaries(tmp_path, ".A.partial-") == [stale]
    assert _everything(tmp_path) == [live.name]


# --------------------------------------------------------------------------- DEF-13: SIGTERM


@posix_signals
def test_sigterm_inside_a_write_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out.bin"
    with pytest.raises(Terminated):
        with sigterm_as_interrupt():
            with atomic_write(out) as fh:
                fh.write(b"half")
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # the handler raises here
    assert _everything(tmp_path) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def _start_cli(args: list[str], env_extra: dict[str, str]) -> subprocess.Popen:
    """The CLI in a child process with the stand-in architectures registered."""
    code = (
        "import sys; sys.path.insert(0, 'tests'); import standin; "
        "keep = standin.registered(); keep.__enter__(); from bratseg.cli.main import main; "
        "sys.exit(main(sys.argv[1:]))"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), str(REPO)]),
        "OMP_NUM_THREADS": "1",
        **env_extra,
    }
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        encoding="utf-8",
        errors="replace",
    )


def _term_when(proc: subprocess.Popen, folder: Path, prefix: str, timeout: float = 120) -> bool:
    """Send SIGTERM as soon as an entry starting with ``prefix`` appears in ``folder``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        if any(p.name.startswith(prefix) for p in folder.iterdir()):
            proc.send_signal(signal.SIGTERM)
            return True
        time.sleep(0.002)
    return False


@posix_signals
def test_sigterm_while_predict_writes_is_one_line_and_leaves_nothing(
    brats2018_case_dir: Path, standin, tmp_path: Path
) -> None:
    """Probe 4.4: SIGTERM while the outputs are written."""
    model = standin.save_standin(tmp_path / "standin.pt")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    args = ["predict", str(brats2018_case_dir), "-o", str(out_dir / "o.nii.gz")]
    args += ["--probabilities", str(out_dir / "p.nii.gz"), "--model", str(model), "-q"]
    proc = _start_cli(args, {})
    hit = _term_when(proc, out_dir, ".")
    _out, err = proc.communicate(timeout=120)
    assert hit, f"the outputs were written before SIGTERM could be sent: {err}"
    assert proc.returncode == 143, err
    assert err.strip().splitlines() == ["napari-brats: error: terminated (SIGTERM)"]
    assert _everything(out_dir) == []


@posix_signals
def test_sigterm_during_export_approved_leaves_no_partial_folder(
    brats2018_case_dir: Path, standin, tmp_path: Path, monkeypatch
) -> None:
    """Probe 4.14: SIGTERM while ``worklist --export-approved`` writes a case."""

    sessions = tmp_path / "sessions"
    monkeypatch.setenv("BRATSEG_SESSIONS", str(sessions))
    root = _approved_worklist(brats2018_case_dir, standin, tmp_path)
    export = tmp_path / "export"
    export.mkdir()
    for _attempt in range(5):  # the staging folder lives for a fraction of a second
        args = ["worklist", str(root), "--export-approved", str(export), "--overwrite", "--json"]
        proc = _start_cli(args, {"BRATSEG_SESSIONS": str(sessions)})
        hit = _term_when(proc, export, ".A.partial-")
        _out, err = proc.communicate(timeout=120)
        if hit and proc.returncode == 143:
            break
    else:
        pytest.fail(f"SIGTERM never reached a running export (last stderr: {err})")
    assert err.strip().splitlines()[-1] == "napari-brats: error: terminated (SIGTERM)", err
    assert not [p.name for p in export.iterdir() if p.name.startswith(".")]


def test_an_interrupt_right_after_the_temporary_file_is_created_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window SIGTERM hit under load: the temporary file exists, but ``atomic_write`` has
    not yet received its name. Simulated by an interrupt raised just after the creation."""
    from bratseg import atomic

    real = atomic._open_temporary

    def created_then_interrupted(path: Path):
        real(path)[1].close()  # the file is on disk ...
        raise Terminated()  # ... and the signal arrives before its name is returned

    monkeypatch.setattr(atomic, "_open_temporary", created_then_interrupted)
    with pytest.raises(Terminated):
        with atomic_write(tmp_path / "o.nii.gz") as handle:
            handle.write(b"never")
    assert _everything(tmp_path) == []


def test_an_interrupt_right_after_a_staging_folder_is_made_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window the SIGTERM-during-export test hit under load: the staging folder of a
    dataset, DICOM or prepare export exists, but its name never reached the caller. Simulated by
    an interrupt raised just after the folder was made; a folder filled and then interrupted
    goes too, and another process's staging folder stays."""
    from bratseg import atomic_folders

    real = atomic_folders._new_folder

    def made_then_interrupted(*args):
        real(*args)  # the folder is on disk ...
        raise Terminated()  # ... and the signal arrives before its name is returned

    other = tmp_path / ".A.partial-1-other"  # another (live or dead) process's: not ours
    other.mkdir()
    monkeypatch.setattr(atomic_folders, "_new_folder", made_then_interrupted)
    with pytest.raises(Terminated):
        with atomic_folders.staging_folder(tmp_path, ".A.partial-"):
            pass
    monkeypatch.undo()
    with pytest.raises(Terminated):
        with atomic_folders.staging_folder(tmp_path, ".A.partial-") as stage:
            (stage / "SEG.dcm").write_bytes(b"half")
            raise Terminated()
    assert _everything(tmp_path) == [other.name]


def test_a_staging_folder_has_the_permissions_of_any_new_folder(tmp_path: Path) -> None:
    """An export a user shares with the group reads like any folder they make (0777 less the
    umask), not 0700 as a temporary folder would."""
    from bratseg import atomic_folders

    old = os.umask(0o027)
    try:
        with atomic_folders.staging_folder(tmp_path, ".A.partial-") as stage:
            (stage / "seg.nii.gz").write_bytes(b"x")
        atomic_folders.swap_in_folder(stage, tmp_path / "export")
    finally:
        os.umask(old)
    assert (tmp_path / "export").stat().st_mode & 0o777 == 0o750
    assert _everything(tmp_path) == ["export"]
    assert (tmp_path / "export" / "seg.nii.gz").read_bytes() == b"x"
    # a replacement keeps the permissions the user gave the export it replaces
    os.chmod(tmp_path / "export", 0o700)
    with atomic_folders.staging_folder(tmp_path, ".A.partial-") as stage:
        (stage / "seg.nii.gz").write_bytes(b"y")
    atomic_folders.swap_in_folder(stage, tmp_path / "export")
    assert (tmp_path / "export").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "export" / "seg.nii.gz").read_bytes() == b"y"


def test_an_interrupt_between_a_rename_and_its_record_leaves_no_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Labels and probabilities are both or neither, also when the signal lands just after the
    first file was renamed into place (before the group noted it)."""
    from bratseg import atomic

    def interrupted(folder: Path) -> None:
        raise Terminated()

    monkeypatch.setattr(atomic, "fsync_folder", interrupted)  # runs right after the rename
    with pytest.raises(Terminated):
        with atomic_write_all([tmp_path / "o.nii.gz", tmp_path / "p.nii.gz"]) as handles:
            for handle in handles:
                handle.write(b"data")
    assert _everything(tmp_path) == []


def test_an_interrupt_between_the_two_renames_of_a_replacement_puts_the_old_folder_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replacing an export renames the old folder aside, then the new one into place; a signal
    between the two renames left the case with no export at its name (the old one hidden)."""
    from bratseg import atomic, atomic_folders

    final, stage = tmp_path / "A", tmp_path / ".A.partial-1"
    final.mkdir()
    (final / "seg.nii.gz").write_bytes(b"old")
    stage.mkdir()
    (stage / "seg.nii.gz").write_bytes(b"new")
    real = atomic.os.replace

    def interrupted_before_the_second(src, dst):
        if Path(src) == stage:
            raise Terminated()
        real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", interrupted_before_the_second)
    with pytest.raises(Terminated):
        atomic_folders.swap_in_folder(stage, final)
    monkeypatch.undo()
    assert (final / "seg.nii.gz").read_bytes() == b"old"
    assert _everything(tmp_path) == [stage.name, "A"]  # the stage is its staging folder's to remove
    atomic_folders.swap_in_folder(stage, final)
    assert (final / "seg.nii.gz").read_bytes() == b"new" and _everything(tmp_path) == ["A"]


def test_an_export_killed_while_replacing_is_put_back_before_the_next_export(
    brats2018_case_dir: Path, standin, tmp_path: Path, monkeypatch
) -> None:
    """A process killed outright between the two renames leaves the old export aside: the next
    export puts it back at its name first, so that it is refused without --overwrite, not
    silently written over."""
    from bratseg.atomic_folders import restore_replaced
    from bratseg.cli.main import main

    monkeypatch.setenv("BRATSEG_SESSIONS", str(tmp_path / "sessions"))
    root = _approved_worklist(brats2018_case_dir, standin, tmp_path)
    export = tmp_path / "export"
    assert main(["worklist", str(root), "--export-approved", str(export), "--json"]) == 0
    files = _everything(export / "A")
    os.replace(export / "A", export / f".A.replaced-{DEAD_PID}-1")  # killed between the renames
    assert main(["worklist", str(root), "--export-approved", str(export), "--json"]) == 2
    assert _everything(export) == ["A"] and _everything(export / "A") == files
    (export / f".A.replaced-{DEAD_PID}-2").mkdir()  # a stale copy beside a complete export
    assert restore_replaced(export / "A") == [export / f".A.replaced-{DEAD_PID}-2"]
    assert _everything(export) == ["A"] and _everything(export / "A") == files
