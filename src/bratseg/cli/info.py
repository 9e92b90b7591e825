"""``napari-brats info CASE_DIR``: what a case folder holds (files, geometry, labels, volumes)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bratseg.cli._common import format_table, parse_mapping, print_json
from bratseg.io import MODALITIES, MODALITY_NAMES, Case, load_case
from bratseg.io.align import ALIGN_MODES
from bratseg.io.readiness import readiness_line
from bratseg.labels import CONVENTIONS, LABEL_VALUES, detect_convention
from bratseg.orientation import axcodes


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``info`` command."""
    parser = subparsers.add_parser(
        "info",
        help="show the files, geometry, label convention and tumour volumes of a case",
        description="Load and validate a case folder; show its modalities and files, shape, "
        "voxel spacing, orientation, and, when a label map (seg) is present, its label "
        "convention and tumour volumes in mL.",
    )
    parser.add_argument("case_dir", metavar="CASE_DIR", help="case folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    parser.add_argument(
        "--map",
        action="append",
        metavar="CHANNEL=FILE",
        help="explicit file for a channel (t1, t1ce, t2, flair, seg) when its name is not "
        "BraTS-style; relative to CASE_DIR or absolute; repeatable",
    )
    parser.add_argument(
        "--labels", choices=CONVENTIONS, help="label convention of the seg (default: detect)"
    )
    parser.add_argument(
        "--align",
        choices=ALIGN_MODES,
        default="none",
        help="align series on other grids into the T1Gd grid (see predict --help)",
    )
    parser.set_defaults(func=run)


def _prepared_qc(case: Case) -> dict[str, Any] | None:
    """The QC values of a case folder written by ``napari-brats prepare`` (None otherwise)."""
    from bratseg.prepare import read_provenance

    provenance = read_provenance(case.folder) if case.folder else None
    return None if provenance is None else dict(provenance.get("qc") or {})


def case_summary(case: Case, labels_override: str | None = None) -> dict[str, Any]:
    """JSON-able description of a loaded case."""
    summary: dict[str, Any] = {
        "case_id": case.case_id,
        "folder": str(case.folder) if case.folder else None,
        "files": {k: str(v) for k, v in case.files.items()},
        "shape": list(case.shape),
        "spacing_mm": list(case.spacing),
        "orientation": "".join(axcodes(case.affine)),
        "intensity_range": {
            m: [float(case.image[i].min()), float(case.image[i].max())]
            for i, m in enumerate(MODALITIES)
        },
        "input_check": {
            "ready": not case.findings,
            "findings": [{"code": f.code, "message": f.message} for f in case.findings],
        },
        "prepared": _prepared_qc(case),
        "seg": None,
    }
    if case.seg is not None:
        from bratseg.metrics import tumour_volumes_ml

        conv = detect_convention(
            case.seg,
            override=labels_override,
            default=case.seg_convention or "2021",
            source=str(case.files["seg"]),
        )
        volumes = tumour_volumes_ml(case.seg, conv, case.spacing)
        summary["seg"] = {
            "file": str(case.files["seg"]),
            "convention": conv,
            "labels": dict(LABEL_VALUES[conv]),
            "volumes_ml": {k: volumes[k] for k in ("ncr", "ed", "et", "tc", "wt")},
        }
    return summary


def run(args: argparse.Namespace) -> int:
    """Print the case summary."""
    case = load_case(
        args.case_dir, mapping=parse_mapping(args.map), labels=args.labels, align=args.align
    )
    for report in case.alignment:  # the registration-quality line of each aligned series
        sys.stderr.write(f"{'napari-brats: warning: ' if report.poor else ''}{report.line()}\n")
    summary = case_summary(case, args.labels)
    if args.json:
        print_json(summary)
        return 0
    shape = " x ".join(str(s) for s in summary["shape"])
    spacing = " x ".join(f"{s:.3g}" for s in summary["spacing_mm"])
    lines = [
        f"Case         {summary['case_id']}",
        f"Folder       {summary['folder']}",
        f"Shape        {shape} voxels",
        f"Spacing      {spacing} mm",
        f"Orientation  {summary['orientation']}",
        f"Input check  {readiness_line(case.findings) or 'BraTS-ready'}",
    ]
    qc = summary["prepared"]
    if qc is not None:
        review = "; ".join(qc.get("needs_review") or []) or "none"
        lines.append(
            f"Prepared     brain {qc.get('brain_ml', 0):,.0f} mL (napari-brats prepare); "
            f"needs review: {review}"
        )
    lines += [
        "",
        format_table(
            ["Modality", "Channel", "Min", "Max", "File"],
            [
                [
                    MODALITY_NAMES[m],
                    m,
                    f"{summary['intensity_range'][m][0]:.6g}",
                    f"{summary['intensity_range'][m][1]:.6g}",
                    case.files[m].name,
                ]
                for m in MODALITIES
            ],
            align="llrrl",
        ),
        "",
    ]
    seg = summary["seg"]
    if seg is None:
        lines.append("Labels       none (no *_seg / *-seg file)")
    else:
        values = ", ".join(f"{k.upper()}={v}" for k, v in seg["labels"].items())
        lines.append(f"Labels       {case.files['seg'].name}")
        lines.append(f"Convention   BraTS {seg['convention']} ({values})")
        lines.append("")
        lines.append(
            format_table(
                ["Tumour volume", "mL"],
                [[k.upper(), f"{v:.2f}"] for k, v in seg["volumes_ml"].items()],
            )
        )
    print("\n".join(lines))
    return 0
