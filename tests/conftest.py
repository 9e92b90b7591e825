"""Shared pytest fixtures: paths to the real BraTS data in ``../shared/data``.

Every data fixture skips the test, with the reason, when its data is absent (the data lives
beside the repository, never inside it). Fixtures giving loaded arrays are shared across the
whole session: treat them as read-only (copy before modifying).
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The shared data folder, ``../shared/data`` relative to the repository root.
DATA_DIR = (REPO_ROOT / ".." / "shared" / "data").resolve()

#: BraTS 2018 case used by default: a 2013 case with all three tissues (NCR 4514, ED 34894,
#: ET 21677 voxels), 240 x 240 x 155, 1 mm isotropic, labels in the 2021 convention.
BRATS2018_CASE = "Brats18_2013_2_1"
BRATS2023_CASE = "BraTS-GLI-00001-000"


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (real BraTS data lives in ../shared/data)")
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``../shared/data``."""
    return _require(DATA_DIR, "shared data folder")


@pytest.fixture(scope="session")
def brats2018_dir() -> Path:
    """Folder of the 16 BraTS 2018 cases (2017-2021 naming, expert labels, 2021 convention)."""
    return _require(DATA_DIR / "brats2018", "BraTS 2018 data")


@pytest.fixture(scope="session")
def brats2018_case_dir(brats2018_dir: Path) -> Path:
    """One BraTS 2018 case folder (:data:`BRATS2018_CASE`) with ``*_seg.nii.gz``."""
    return _require(brats2018_dir / BRATS2018_CASE, f"BraTS 2018 case {BRATS2018_CASE}")


@pytest.fixture(scope="session")
def brats2023_case_dir() -> Path:
    """The BraTS 2023-named case (``-t1n/-t1c/-t2w/-t2f``); its ``*-seg`` file is an algorithm
    output in the 2023 convention (ET = 3), not an expert label."""
    return _require(
        DATA_DIR / "brats2023-naming" / BRATS2023_CASE, f"BraTS 2023-named case {BRATS2023_CASE}"
    )


@pytest.fixture(scope="session")
def official_sample_dir() -> Path:
    """The official BraTS evaluation sample: ``sample_data/{pred,ref}/`` and its metrics JSON."""
    return _require(DATA_DIR / "official-metrics-sample", "official BraTS metrics sample")


@pytest.fixture(scope="session")
def brats2018_case(brats2018_case_dir: Path):
    """:data:`BRATS2018_CASE` loaded once per session (``bratseg.io.Case``); read-only."""
    from bratseg.io import load_case

    return load_case(brats2018_case_dir)


@pytest.fixture(scope="module")
def standin():
    """The stand-in models of ``tests/standin.py``, registered while the test module runs.

    Yields the ``standin`` helper module (``save_standin``, ``expected_region_probs``, ...).
    """
    import standin as module

    with module.registered():
        yield module


@pytest.fixture(autouse=True, scope="session")
def _review_sessions_in_a_temporary_folder(tmp_path_factory: pytest.TempPathFactory):
    """Autosaved review sessions of the tests go to a temporary folder, not the user's."""
    import os

    folder = tmp_path_factory.mktemp("review-sessions")
    old = os.environ.get("BRATSEG_SESSIONS")
    os.environ["BRATSEG_SESSIONS"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("BRATSEG_SESSIONS", None)
    else:
        os.environ["BRATSEG_SESSIONS"] = old


#: Fixtures that need Qt and a display: tests using them are marked ``gui`` automatically.
GUI_FIXTURES = frozenset({"qtbot", "make_napari_viewer", "make_napari_viewer_proxy"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``gui`` every test that needs napari or Qt: those using a Qt or napari-viewer fixture
    and every test of the plugin's modules (``test_plugin_*.py``), whatever the module declares,
    so that ``-m "not gui"`` runs the engine's tests without napari or a display."""
    for item in items:
        plugin_module = item.path.name.startswith("test_plugin_")
        if plugin_module or GUI_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.gui)


@pytest.fixture(scope="session")
def raw_clinical_dir() -> Path:
    """The raw clinical case TCGA-FG-6692: ``native/`` (four series with skull, own grids,
    5.5 mm slices) and ``reference/`` (BrainLes' preprocessed copy and HD-BET brain mask)."""
    return _require(DATA_DIR / "raw-clinical" / "TCGA-FG-6692", "raw clinical case TCGA-FG-6692")


@pytest.fixture(scope="session")
def raw_clinical_map(raw_clinical_dir: Path) -> dict[str, Path]:
    """Channel -> native series file of the raw clinical case."""
    native = raw_clinical_dir / "native"
    ends = {"t1": "_t1", "t1ce": "_t1c", "t2": "_t2", "flair": "_fla"}
    return {k: next(native.glob(f"*{end}.nii.gz")) for k, end in ends.items()}
