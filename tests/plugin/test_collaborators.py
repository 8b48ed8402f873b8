"""The parts around `Plugin` work through the collaborators they are given: `incoming.py` does
not import `plugin.py` (not even for typing), and neither it nor `paychan.py` reads a private
attribute of a Plugin."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import ilp_paychan.plugin

PLUGIN_DIR = Path(ilp_paychan.plugin.__file__).resolve().parent


def test_incoming_does_not_import_the_plugin_module() -> None:
    source = (PLUGIN_DIR / "incoming.py").read_text("utf-8")
    imported = {
        node.module
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.module is not None
    }
    assert "ilp_paychan.plugin.plugin" not in imported
    check = (
        "import sys, ilp_paychan.plugin.incoming; "
        "sys.exit('ilp_paychan.plugin.plugin' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", check], check=False).returncode == 0


def private_reads(path: Path) -> list[str]:
    """`x._name` expressions whose object is not `self` or `cls` (a dunder is not private)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
            continue
        if node.attr.startswith("__") and node.attr.endswith("__"):
            continue
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            continue
        found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    return found


def test_incoming_and_paychan_read_no_private_attribute_of_another_object() -> None:
    assert private_reads(PLUGIN_DIR / "incoming.py") == []
    assert private_reads(PLUGIN_DIR / "paychan.py") == []
