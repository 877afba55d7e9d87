"""The code's layers: dependencies point one way.

The device (``device``) is what a kiosk runs; the operator's tools (``provisioning``, ``fleet``)
build on it. A kiosk must never need the operator's side, so nothing in ``device`` imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_nothing_under_device_imports_the_operator_tools_or_the_checkout():
    offenders = {}
    for path in sorted((ROOT / "device").rglob("*.py")):
        bad = {m for m in imported_modules(path)
               if m.split(".")[0] in ("provisioning", "fleet", "tools", "tests")}
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert not offenders, offenders


def test_the_operator_tools_do_not_import_the_offline_tools_or_each_other_backwards():
    for package, forbidden in (("provisioning", ("tools", "tests", "fleet")),
                               ("fleet", ("tools", "tests"))):
        for path in sorted((ROOT / package).rglob("*.py")):
            bad = {m for m in imported_modules(path) if m.split(".")[0] in forbidden}
            assert not bad, (str(path.relative_to(ROOT)), sorted(bad))


def test_the_checker_sees_imports_inside_functions(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from provisioning.bundle import write_bundle\n")
    assert "provisioning.bundle" in imported_modules(probe)
