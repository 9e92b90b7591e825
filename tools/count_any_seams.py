"""Count function parameters annotated with ``Any`` at the engine's and the plugin's seams.

Two counts per file, read from the source with :mod:`ast` (nothing is imported):

* **seam**: parameters named ``case``, ``models``, ``session``, ``options``, ``loaded``, ``model``
  or ``prediction`` whose annotation mentions ``Any`` (``Any``, ``list[Any]``, ``Any | None`` ...);
* **any**: every parameter annotated exactly ``Any`` (``*args: Any`` and ``**kwargs: Any`` too).

Prints a per-file table (files with no hit are left out), the seam count per parameter name and
the totals; ``--list`` also lists each seam parameter. ``--names`` changes the seam names; paths default to ``src/bratseg`` and
``napari_brats``.

Run: ``.venv/bin/python tools/count_any_seams.py [PATH ...]``
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter
from pathlib import Path

SEAM_NAMES = ("case", "models", "session", "options", "loaded", "model", "prediction")
DEFAULT_PATHS = ("src/bratseg", "napari_brats")


def _mentions_any(annotation: ast.expr) -> bool:
    """Whether an annotation names ``Any`` anywhere (``Any``, ``typing.Any``, ``list[Any]``, or
    the same as a string)."""
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        try:
            annotation = ast.parse(annotation.value, mode="eval").body
        except SyntaxError:
            return False
    return any(
        (isinstance(node, ast.Name) and node.id == "Any")
        or (isinstance(node, ast.Attribute) and node.attr == "Any")
        for node in ast.walk(annotation)
    )


def _is_exactly_any(annotation: ast.expr) -> bool:
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        return annotation.value.strip() in ("Any", "typing.Any")
    return (isinstance(annotation, ast.Name) and annotation.id == "Any") or (
        isinstance(annotation, ast.Attribute) and annotation.attr == "Any"
    )


def _parameters(func: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.arg]:
    args = func.args
    params = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    params += [a for a in (args.vararg, args.kwarg) if a is not None]
    return params


def count_file(
    path: Path, names: tuple[str, ...], sites: list[str] | None = None
) -> tuple[Counter[str], int]:
    """Seam parameters by name, and parameters annotated exactly ``Any``, in one file.

    ``sites``, when given, receives one ``file:line function(name: annotation)`` per seam.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    seams: Counter[str] = Counter()
    exact = 0
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for arg in _parameters(node):
            if arg.annotation is None:
                continue
            if arg.arg in names and _mentions_any(arg.annotation):
                seams[arg.arg] += 1
                if sites is not None:
                    hint = ast.unparse(arg.annotation)
                    sites.append(f"{path}:{arg.lineno} {node.name}({arg.arg}: {hint})")
            if _is_exactly_any(arg.annotation):
                exact += 1
    return seams, exact


def _python_files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(sorted(p.rglob("*.py")) if p.is_dir() else [p])
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=list(DEFAULT_PATHS))
    parser.add_argument("--names", default=",".join(SEAM_NAMES), help="comma-separated seam names")
    parser.add_argument("--list", action="store_true", help="also list every seam parameter")
    args = parser.parse_args(argv)
    names = tuple(n for n in args.names.split(",") if n)

    by_name: Counter[str] = Counter()
    per_package: Counter[str] = Counter()
    rows: list[tuple[str, int, int]] = []
    sites: list[str] = []
    total_seam = total_exact = 0
    for path in _python_files(args.paths):
        seams, exact = count_file(path, names, sites)
        n_seam = sum(seams.values())
        if n_seam or exact:
            rows.append((str(path), n_seam, exact))
        by_name.update(seams)
        per_package[path.parts[0] if path.parts[0] != "src" else "/".join(path.parts[:2])] += n_seam
        total_seam += n_seam
        total_exact += exact

    width = max([len(r[0]) for r in rows] + [4])
    print(f"{'file':<{width}}  seam  any")
    for name, n_seam, exact in rows:
        print(f"{name:<{width}}  {n_seam:>4}  {exact:>3}")
    print(f"{'total':<{width}}  {total_seam:>4}  {total_exact:>3}")
    print()
    print("seam parameters by name: " + ", ".join(f"{n}={by_name[n]}" for n in names))
    print(
        "seam parameters by tree: " + ", ".join(f"{k}={v}" for k, v in sorted(per_package.items()))
    )
    if args.list:
        print()
        print("\n".join(sites))
    return 0


if __name__ == "__main__":
    sys.exit(main())
