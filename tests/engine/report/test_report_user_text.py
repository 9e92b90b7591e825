"""User text is data (probes 6.1, 6.7-6.9): reviewer, status and case names are never matplotlib
mathtext in the PDF report, and never split a table row, a CLI line or a PDF line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bratseg.cli._common import format_table
from bratseg.cli.main import main
from bratseg.report.table import info_lines
from bratseg.text import one_line

HOSTILE_REVIEWER = 'Dr "; rm -rf / #\n<script>alert(1)</script>\r\x1b[31m\u2028x\u202e'


def test_one_line_turns_every_control_character_into_a_space() -> None:
    assert one_line(HOSTILE_REVIEWER) == 'Dr "; rm -rf / # <script>alert(1)</script> [31m x'
    assert one_line("Ana  Díaz 脑 $5") == "Ana  Díaz 脑 $5"  # printable text is left alone
    assert one_line(None) == "None" and one_line(3) == "3"
    table = format_table(["Who", "Note"], [[HOSTILE_REVIEWER, "a\nb"], ["x", "y"]])
    assert len(table.splitlines()) == 4


def test_report_lines_hold_no_newline() -> None:
    data = {
        "case_id": "case\nid",
        "convention": "2021",
        "spacing_mm": [1.0, 1.0, 1.0],
        "axcodes": "LPS",
        "model": {"names": ["m\nx"], "sha256": []},
        "reviewer": HOSTILE_REVIEWER,
        "status": "<b>approved</b>\nfinal",
        "generated": "now",
    }
    lines = info_lines(data)
    assert all("\n" not in line and "\r" not in line and "\x1b" not in line for line in lines)
    assert "Reviewer: Dr " in lines[2] and "Status: <b>approved</b> final" in lines[2]


@pytest.mark.parametrize("reviewer", ["$\\frac{$", "$x^{$", "a $ b $ c"])
def test_pdf_report_draws_dollar_signs_literally(
    brats2018_case_dir: Path, tmp_path: Path, capsys, monkeypatch, reviewer: str
) -> None:
    import matplotlib.mathtext

    parsed: list[str] = []
    original = matplotlib.mathtext.MathTextParser.parse

    def recording_parse(self, s, *args, **kwargs):  # a witness, the real parser still runs
        parsed.append(s)
        return original(self, s, *args, **kwargs)

    monkeypatch.setattr(matplotlib.mathtext.MathTextParser, "parse", recording_parse)
    pdf = tmp_path / "r.pdf"
    status = "cost $5 and $6^{"  # probe 6.9: printed as "cost 5and6^{" before
    code = main(
        [
            "report",
            str(brats2018_case_dir),
            "--pdf",
            str(pdf),
            "--reviewer",
            reviewer,
            "--status",
            status,
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err  # probe 6.8: '$\frac{$' crashed it (rc 1, no PDF)
    assert pdf.read_bytes().startswith(b"%PDF")
    assert parsed == []  # no text of the page went through mathtext


def test_worklist_and_sessions_tables_keep_one_row_per_case(
    brats2018_dir: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    from expert_review import expert_session

    from bratseg.io import load_case
    from bratseg.review import SessionStore

    monkeypatch.setenv("BRATSEG_SESSIONS", str(tmp_path / "sessions"))
    root = tmp_path / "cases"
    names = ("Brats18_2013_2_1", "hostile\nname $x$")
    for name, source in zip(names, ("Brats18_2013_2_1", "Brats18_CBICA_ABM_1")):
        (root / name).mkdir(parents=True)
        for f in (brats2018_dir / source).iterdir():
            os.symlink(f, root / name / f.name.replace(source, "case"))
        SessionStore().save(expert_session(load_case(root / name)))
    for name in names:  # probe 6.1
        assert main(["worklist", str(root), "--approve", name, "--reviewer", HOSTILE_REVIEWER]) == 0
        out, err = capsys.readouterr()
        assert len(out.splitlines()) == 2 + len(names) and err.count("\n") == 1
        assert "approved by Dr" in err and "\x1b" not in out + err
    assert main(["worklist", str(root), "--json"]) == 0
    cases = json.loads(capsys.readouterr().out)["cases"]
    assert cases[1]["approval"]["reviewer"] == HOSTILE_REVIEWER  # stored as given: it is data
    assert main(["sessions"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2 + len(names)
