"""Imports read naturally (issue 18 §4): at the top of modules. An import inside a function is the exception,
and says why, in a comment on its line or on the comment lines just above its block of imports (e.g. "torch:
only when a preset is validated; the Snakefile imports this module in every process")."""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "prunebench"


def unexplained(text: str) -> list:
    """(line, source) of every import inside a function with no reason: no comment on its line, and none on
    the lines above it back to the start of its run of consecutive imports."""
    lines = text.splitlines()
    out = []
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for sub in ast.walk(node):
            if not isinstance(sub, (ast.Import, ast.ImportFrom)):
                continue
            i = sub.lineno - 1
            explained = "#" in lines[sub.end_lineno - 1] or "#" in lines[i]
            j = i - 1
            while not explained and j >= 0:
                s = lines[j].strip()
                if s.startswith("#"):
                    explained = True
                elif s.startswith(("import ", "from ")) or s == "" or s.startswith(("try:", "except", ")")):
                    j -= 1
                    continue
                break
            if not explained:
                out.append((sub.lineno, lines[i].strip()))
    return out


def test_every_function_level_import_says_why():
    bad = [f"{f.relative_to(SRC)}:{n}: {src}" for f in sorted(SRC.rglob("*.py"))
           for n, src in unexplained(f.read_text())]
    assert not bad, "imports inside functions without a reason (move them to the top, or say why):\n" + "\n".join(bad)


def test_the_check_finds_an_unexplained_import():
    text = ("import os\n\n\ndef f():\n    import json\n    return json\n\n\n"
            "def g():\n    # torch: only on this rare path\n    import torch\n    from math import pi\n    return torch, pi\n")
    assert unexplained(text) == [(5, "import json")]
