"""The engine (src/bratseg) imports without any GUI toolkit."""

from __future__ import annotations

import json
import subprocess
import sys

GUI_MODULES = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "vispy")

_SCRIPT = """
import importlib, json, pkgutil, sys
import bratseg
GUI = {gui!r}
report = {{"modules": [], "offenders": {{}}}}
for info in pkgutil.walk_packages(bratseg.__path__, prefix="bratseg."):
    if info.name.rsplit(".", 1)[-1] == "__main__":  # importing it would run the program
        continue
    importlib.import_module(info.name)
    report["modules"].append(info.name)
    loaded = sorted(m for m in GUI if m in sys.modules)
    if loaded and info.name not in report["offenders"]:
        report["offenders"][info.name] = loaded
        GUI = tuple(m for m in GUI if m not in loaded)
print(json.dumps(report))
"""


def test_every_engine_module_imports_without_gui() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT.format(gui=GUI_MODULES)],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "bratseg.io" in report["modules"] and "bratseg.cli.main" in report["modules"]
    assert report["offenders"] == {}, (
        f"engine modules pulled in GUI packages (first importer: packages): {report['offenders']}"
    )
