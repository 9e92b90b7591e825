"""The no-enhancement ET rule in the Postprocessing dock: its control, the decision shown with its
evidence, and the one-click restore, on a real case segmented by a stand-in model."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

pytestmark = [pytest.mark.gui]


@pytest.fixture
def dock(case_dock, standin_prediction):
    from napari_brats._widgets.postprocess import PostprocessWidget

    _viewer, widget, _layer, session = case_dock(
        standin_prediction(), PostprocessWidget, "Postprocessing"
    )
    return widget, session


def test_rule_removes_et_says_why_and_one_click_restores_it(dock, qtbot):
    from bratseg.inference.engine import t1_t1ce
    from bratseg.labels import LABEL_VALUES
    from bratseg.postprocess import postprocess

    widget, session = dock
    et = LABEL_VALUES[session.convention]["et"]
    assert (session.labels == et).any(), "the stand-in predicts ET on this enhancing case"
    assert not widget.restore_et.isEnabled()

    # A demanding threshold: this case's ET does not reach it, the rule fires and says so.
    widget.controls["et_enhancement_min"].value = 2.9
    qtbot.waitUntil(lambda: session.config.et_enhancement_min == pytest.approx(2.9), timeout=5000)
    evidence = session.et_evidence
    assert evidence is not None and evidence.removed and evidence.ratio < 2.9
    assert not (session.labels == et).any()
    text = widget.et_rule_label.text()
    assert text.startswith("ET removed: no enhancement (T1Gd/T1 ")
    assert f"{evidence.ratio:.2f}" in text and "mL became NCR" in text
    assert widget.restore_et.isEnabled()
    expected = postprocess(
        session.region_probs,
        session.config,
        convention=session.convention,
        t1_t1ce=t1_t1ce(session.case.image),
    )
    np.testing.assert_array_equal(session.labels, expected)
    # The report and the saved session (what the worklist shows) say it too.
    from bratseg.review import SessionStore
    from bratseg.review.assessment import NEEDS_REVIEW_NOTE, reasons_of
    from napari_brats._widgets.report import build_report

    review = [NEEDS_REVIEW_NOTE + reason for reason in reasons_of(session.assessment)]
    assert build_report(session)["notes"] == [text, *review]  # the rule first, then the flag
    saved = SessionStore().save(session)
    assert saved.meta["et_rule"] == text

    # One click puts the model's ET back.
    widget.restore_et.click()
    assert session.config.et_enhancement_min == 0.0
    assert widget.controls["et_enhancement_min"].value == 0.0
    assert (session.labels == et).any()
    assert widget.et_rule_label.text() == "" and not widget.restore_et.isEnabled()

    # A threshold the enhancing case passes: ET kept, with the measured ratio shown.
    widget.controls["et_enhancement_min"].value = 1.05
    qtbot.waitUntil(lambda: session.config.et_enhancement_min == pytest.approx(1.05), timeout=5000)
    assert session.et_evidence is not None and not session.et_evidence.removed
    assert widget.et_rule_label.text().startswith("ET kept: enhancement T1Gd/T1 ")
    assert (session.labels == et).any()


def test_core_fraction_rule_shows_its_evidence_and_restore_turns_both_rules_off(dock, qtbot):
    from bratseg.labels import LABEL_VALUES

    widget, session = dock
    et = LABEL_VALUES[session.convention]["et"]
    widget.controls["et_enhancement_min"].value = 1.05  # passed by this enhancing case
    qtbot.waitUntil(lambda: session.config.et_enhancement_min == pytest.approx(1.05), timeout=5000)
    # A demanding share: the stand-in's ET is less than 95 % of its core.
    widget.controls["et_core_fraction_min"].value = 0.95
    qtbot.waitUntil(
        lambda: session.config.et_core_fraction_min == pytest.approx(0.95), timeout=5000
    )
    evidence = session.et_evidence
    assert evidence is not None and evidence.removed and evidence.little_et
    assert not evidence.no_uptake
    text = widget.et_rule_label.text()
    assert text.startswith("ET removed: no enhancement (ET ") and "of the core < 95%" in text
    assert not (session.labels == et).any() and widget.restore_et.isEnabled()

    widget.restore_et.click()
    assert session.config.et_core_fraction_min == 0.0
    assert session.config.et_enhancement_min == 0.0
    assert widget.controls["et_core_fraction_min"].value == 0.0
    assert (session.labels == et).any() and not widget.restore_et.isEnabled()

    # The default ensemble's values on this enhancing case: ET kept, both numbers shown.
    widget.controls["et_enhancement_min"].value = 1.1
    widget.controls["et_core_fraction_min"].value = 0.04
    qtbot.waitUntil(
        lambda: session.config.et_core_fraction_min == pytest.approx(0.04), timeout=5000
    )
    text = widget.et_rule_label.text()
    assert text.startswith("ET kept: enhancement T1Gd/T1 ") and "of the core >= 4%" in text
    if os.environ.get("NAPARI_BRATS_SCREENSHOTS"):  # the documentation's picture
        widget.advanced.expand(animate=False)
        qtbot.wait(200)
        images = Path(__file__).resolve().parents[2] / "docs" / "images"
        widget.grab().save(str(images / "postprocess_dock_advanced.png"))
