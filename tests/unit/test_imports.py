"""Every service and entry-point module imports on its own, in a fresh interpreter: an
import cycle hidden by the order the test suite happens to load modules in fails here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import paywarden

PACKAGE = Path(paywarden.__file__).parent
MODULES = sorted(
    "paywarden." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    for folder in ("services", "api", "web")
    for path in (PACKAGE / folder).glob("*.py")
    if path.name != "__init__.py"
)


def test_each_module_imports_alone() -> None:
    # One interpreter per module, all started at once and bounded in time.
    processes = {
        module: subprocess.Popen(
            [sys.executable, "-c", f"import {module}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for module in MODULES
    }
    failures = {}
    for module, process in processes.items():
        _, stderr = process.communicate(timeout=120)
        if process.returncode != 0:
            failures[module] = stderr.decode(errors="replace").strip().splitlines()[-1:]
    assert len(MODULES) > 20
    assert not failures, failures
