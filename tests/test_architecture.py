"""The package's three wings and the direction of their imports (README "Layout").

library/  what a pip user imports         -> imports neither pipeline/ nor report/
report/   what a reviewer reads           -> imports the library only
pipeline/ what the Snakemake DAG runs     -> imports the library and the report wing
cli/      the command line over all three
"""
import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "prunebench"
WINGS = ("library", "pipeline", "report")
FORBIDDEN = {"library": ("pipeline", "report", "cli"), "report": ("pipeline", "cli"), "pipeline": ("cli",)}


def imported_modules(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
    # modules named as strings (importlib.import_module("prunebench....")) count too
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
                and node.args and isinstance(node.args[0], ast.Constant)):
            yield node.args[0].value


def test_the_package_root_holds_the_three_wings_and_the_cli_only():
    entries = sorted(p.name for p in PKG.iterdir() if not p.name.startswith((".", "__pycache__")))
    assert entries == ["__init__.py", "__main__.py", "cli", "library", "pipeline", "report"]


def test_no_wing_imports_a_wing_above_it():
    bad = []
    for wing, forbidden in FORBIDDEN.items():
        for f in sorted((PKG / wing).rglob("*.py")):
            for mod in imported_modules(f):
                parts = mod.split(".")
                if len(parts) > 1 and parts[0] == "prunebench" and parts[1] in forbidden:
                    bad.append(f"{f.relative_to(PKG)} imports {mod}")
    assert not bad, "\n".join(bad)


def test_the_guard_finds_a_violation(tmp_path):
    """The check above can fail: a library file naming a pipeline module is caught."""
    f = tmp_path / "x.py"
    f.write_text("from prunebench.pipeline import grid\nimport importlib\nimportlib.import_module('prunebench.report.stats')\n")
    mods = set(imported_modules(f))
    assert "prunebench.pipeline" in mods and "prunebench.report.stats" in mods
