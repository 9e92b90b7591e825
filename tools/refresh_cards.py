"""Bring the cards of already bundled models up to today's card rules, without retraining.

Cards written by earlier versions can cite the papers by their old numbers ("seed 002") and name
their data folders by a path of the training machine. This tool rewrites, in every bundled
``NAME.json`` and in the card embedded in ``NAME.pt`` alike:

- paper numbers -> author-year citations (:mod:`bratseg.references`); the ``paper`` field ->
  the architecture's citation of the registry;
- ``data.folders`` -> folder names only; ``data.datasets`` (dataset name -> case IDs) and
  ``data.pretrained_cases`` are added where missing (from ``--data`` folders, by case ID);
- the checkpoint's own ``provenance.data`` -> folder names only.

Scores, weights and everything else stay as they are (the weights are not even converted: the
file's tensors are written back unchanged); the JSON's ``sha256`` / ``file_size`` follow the
rewritten file. Writes are atomic. ``--check`` only reports what would change (exit code 1 if
anything would).

Run: ``.venv/bin/python tools/refresh_cards.py [--data DIR ...] [--check] [NAME ...]``
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS_DIR = ROOT / "src" / "bratseg" / "weights"
DEFAULT_DATA = [ROOT / ".." / "shared" / "data" / "brats2018", ROOT / ".." / "extra-data"]

#: The papers' old numbers -> reference keys of bratseg.references.
_OLD_NUMBERS = {
    "000": "ashtari2021",
    "001": "jiang2020",
    "002": "henry2021",
    "003": "futrega2021",
    "004": "adeniji_liu",
}


def cite_numbers(text: str) -> str:
    """``text`` with "seed 002" / "seed 002's" replaced by the paper's author-year citation."""
    from bratseg.references import cite

    def repl(match: re.Match[str]) -> str:
        return cite(_OLD_NUMBERS[match.group(1)]) + (match.group(2) or "")

    return re.sub(r"\b[Ss]eed[ -]?(00[0-4])('s)?", repl, text)


def _strings(value: Any) -> Any:
    """Every string inside ``value`` (dicts, lists) passed through :func:`cite_numbers`."""
    if isinstance(value, str):
        return cite_numbers(value)
    if isinstance(value, list):
        return [_strings(v) for v in value]
    if isinstance(value, dict):
        return {k: _strings(v) for k, v in value.items()}
    return value


def refresh_card(card: dict[str, Any], data_dirs: list[Path]) -> dict[str, Any]:
    """The card under today's rules (see the module docstring); ``card`` is not changed."""
    from bratseg.evaluation.bundling import case_datasets
    from bratseg.models.registry import get_architecture

    out = _strings(card)
    try:
        out["paper"] = get_architecture(str(out.get("architecture"))).paper
    except KeyError:
        pass
    recipe = out.get("recipe")
    if isinstance(recipe, dict) and isinstance(recipe.get("source"), str):
        recipe["source"] = re.sub(r"^(.*?) \(([^()]*) et al\.\)$", r"\1", recipe["source"])
    data = dict(out.get("data") or {})
    data["folders"] = [Path(str(f)).name for f in data.get("folders") or []]
    cases = [*(data.get("train_cases") or []), *(data.get("val_cases") or [])]
    if "datasets" not in data:
        found = [str(d) for d in data_dirs if d.is_dir()]
        data["datasets"] = case_datasets(found, cases)
    data.setdefault("pretrained_cases", [])
    out["data"] = data
    return out


def refresh_model(name: str, data_dirs: list[Path], check: bool) -> bool:
    """Refresh ``NAME.json`` and ``NAME.pt``; returns whether anything changed (or would)."""
    import torch

    from bratseg.atomic import atomic_write
    from bratseg.checkpoint import file_sha256

    json_path, pt_path = WEIGHTS_DIR / f"{name}.json", WEIGHTS_DIR / f"{name}.pt"
    card = json.loads(json_path.read_text(encoding="utf-8"))
    payload = torch.load(pt_path, map_location="cpu", weights_only=True)
    provenance = dict(payload.get("provenance") or {})
    embedded = provenance.get("card") or {}
    new_card = refresh_card(card, data_dirs)
    new_embedded = refresh_card(embedded, data_dirs) if embedded else {}
    new_provenance = {
        **_strings(provenance),
        "card": new_embedded,
        **(
            {"data": [Path(str(d)).name for d in provenance["data"]]}
            if provenance.get("data")
            else {}
        ),
    }
    changed = new_embedded != embedded or new_provenance != provenance
    if check or not (changed or new_card != card):
        return changed or new_card != card
    if changed:
        payload["provenance"] = new_provenance
        with atomic_write(pt_path) as fh:
            torch.save(payload, fh)
    new_card["sha256"], new_card["file_size"] = file_sha256(pt_path), pt_path.stat().st_size
    with atomic_write(json_path) as fh:
        fh.write((json.dumps(new_card, indent=1) + "\n").encode("utf-8"))
    return True


def main(argv: list[str] | None = None) -> int:
    """Refresh the named (default: every) bundled model's card."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="bundled model names (default: all)")
    parser.add_argument("--data", type=Path, action="append", help="folders of case folders")
    parser.add_argument("--check", action="store_true", help="only report what would change")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    names = args.names or sorted(
        p.stem for p in WEIGHTS_DIR.glob("*.pt") if (WEIGHTS_DIR / f"{p.stem}.json").is_file()
    )
    changed = [n for n in names if refresh_model(n, args.data or DEFAULT_DATA, args.check)]
    verb = "would change" if args.check else "refreshed"
    print(f"{verb}: {', '.join(changed) or 'nothing'}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
