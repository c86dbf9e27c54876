"""One source for every name (issue 18 §2): no literal collection of known names outside the table that owns them.

Known names: methods and sanity-check ablations (library/methods.py), papers (report/papers.py), data sets
(library/datasets.py), initialization schemes (library/init.py), models (library/models.py). A *literal
collection* is two or more names of one kind written out in one place:
- Python (src/**/*.py): the string elements of a tuple, list or set, the string keys of a dict, the string
  arguments of a call, or one string that is nothing but names joined by `,` `|` `/` `or` `and` (a regex
  alternation such as "mnist|cifar10", help text such as "fggp, gmp or mfgn_annealed");
- Snakemake (Snakefile, rules/*.smk): the strings inside one pair of brackets, and joined strings as above;
- YAML (src/**/*.yaml, the preset schema): a list (an enum), or the keys of a mapping.
Anything that needs such a list derives it from the table ("|".join(DATASETS), at_init(), ...).
"""
from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import yaml

from conftest import REPO
from prunebench.library import datasets, init, methods, models
from prunebench.report import papers

# kind -> (its names, the file of its table: the one place they may be listed)
KINDS = {
    "method": (frozenset(methods.METHODS), methods.__file__),
    "ablation": (frozenset(methods.ABLATIONS), methods.__file__),
    "paper": (frozenset(papers.PAPERS), papers.__file__),
    "dataset": (frozenset(datasets.DATASETS), datasets.__file__),
    "init scheme": (frozenset(init.SCHEMES), init.__file__),
    "model": (frozenset(models.MODELS), models.__file__),
}
# A table may name another table's rows as a relation of its own rows: the paper table says which methods each
# paper compares (PaperInfo.methods). kind -> the other tables that may list its names.
RELATIONS = {"method": (papers.__file__,)}
SEPARATORS = re.compile(r"\s*(?:,|\||/|\s+or\s+|\s+and\s+|\s+)\s*")



def _lists(strings) -> set:
    """{(kind, names)} for every kind with two or more of its names among `strings`."""
    out, strings = set(), list(strings)
    for kind, (names, _) in KINDS.items():
        hit = tuple(sorted({s for s in strings if isinstance(s, str) and s in names}))
        if len(hit) >= 2:
            out.add((kind, hit))
    return out


def _joined(text: str) -> set:
    """A string that is nothing but known names joined by separators ("a|b", "a, b or c")."""
    parts = [p for p in SEPARATORS.split(text.strip().strip("^$()[]`'\"")) if p]
    known = frozenset().union(*(names for names, _ in KINDS.values()))
    return _lists(parts) if len(parts) >= 2 and all(p in known for p in parts) else set()


def _python(text: str) -> set:
    found = set()
    for node in ast.walk(ast.parse(text)):
        elements = None
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            elements = node.elts
        elif isinstance(node, ast.Dict):
            elements = [k for k in node.keys if k is not None]
        elif isinstance(node, ast.Call):
            elements = node.args
        if elements is not None:
            found |= _lists(e.value for e in elements if isinstance(e, ast.Constant))
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found |= _joined(node.value)
    return found


def _snakemake(text: str) -> set:
    """Snakemake files are not Python: their tokens, grouped by brackets."""
    found, groups = set(), []
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.OP and tok.string in "([{":
            groups.append([])
        elif tok.type == tokenize.OP and tok.string in ")]}" and groups:
            found |= _lists(groups.pop())
        elif tok.type == tokenize.STRING:
            try:
                value = ast.literal_eval(tok.string)
            except (ValueError, SyntaxError):  # an f-string: its literal parts name nothing whole
                continue
            if isinstance(value, str):
                found |= _joined(value)
                if groups:
                    groups[-1].append(value)
    return found


def _yaml(node) -> set:
    found = set()
    if isinstance(node, dict):
        found |= _lists(node)
        for v in node.values():
            found |= _yaml(v)
    elif isinstance(node, list):
        found |= _lists(node)
        for v in node:
            found |= _yaml(v)
    elif isinstance(node, str):
        found |= _joined(node)
    return found


def name_lists(path: Path, text: str | None = None) -> set:
    """{(kind, names)} of the literal collections of known names in one file, except the names whose table
    the file is."""
    text = path.read_text() if text is None else text
    if path.suffix == ".py":
        found = _python(text)
    elif path.suffix in (".yaml", ".yml"):
        found = _yaml(yaml.safe_load(text))
    else:
        found = _snakemake(text)
    own = {kind for kind, (_, table) in KINDS.items()
           if path.resolve() in {Path(f).resolve() for f in (table, *RELATIONS.get(kind, ()))}}
    return {(kind, names) for kind, names in found if kind not in own}


def scanned_files() -> list:
    src = REPO / "src"
    return sorted([*src.rglob("*.py"), *src.rglob("*.yaml"), *(REPO / "rules").glob("*.smk"), REPO / "Snakefile"])


def test_no_list_of_known_names_outside_its_table():
    bad = []
    for f in scanned_files():
        rel = str(f.relative_to(REPO))
        for kind, names in sorted(name_lists(f)):
            bad.append(f"{rel}: {kind} names {list(names)} (derive them from the {kind} table)")
    assert not bad, "\n".join(bad)


def test_every_table_and_rule_file_is_scanned():
    files = {str(f.relative_to(REPO)) for f in scanned_files()}
    assert {"Snakefile", "rules/common.smk", "src/prunebench/pipeline/schemas/preset.yaml"} <= files
    assert {str(Path(table).resolve().relative_to(REPO)) for _, table in KINDS.values()} <= files


# ------------------------------------------------------------------------------------------------------
# The guard can fail: constructed files.

def test_the_guard_finds_lists_in_python():
    f = Path("src/prunebench/somewhere.py")
    code = {
        'DURING = ("fggp", "gmp")': {("method", ("fggp", "gmp"))},
        'ORDER = ["snip", "force", "x"]': {("method", ("force", "snip"))},
        'if m in {"grasp", "synflow"}: pass': {("method", ("grasp", "synflow"))},
        'STYLE = {"force": 1, "spp": 2}': {("paper", ("force", "spp"))},
        'PAT = "^(mnist|cifar10)$"': {("dataset", ("cifar10", "mnist"))},
        'HELP = "fggp, gmp or mfgn_annealed"': {("method", ("fggp", "gmp", "mfgn_annealed"))},
        'f("shuffle", "invert")': {("ablation", ("invert", "shuffle"))},
        'MODELS = ("vgg16", "resnet20")': {("model", ("resnet20", "vgg16"))},
        'S = ("orthogonal", "xavier_normal")': {("init scheme", ("orthogonal", "xavier_normal"))},
    }
    for text, expected in code.items():
        assert name_lists(f, text) == expected, text


def test_the_guard_finds_lists_in_rules_and_yaml():
    assert name_lists(Path("rules/x.smk"), 'wildcard_constraints:\n    dataset="mnist|cifar100",\n') == {
        ("dataset", ("cifar100", "mnist"))}
    assert name_lists(Path("rules/x.smk"), 'rule a:\n    input:\n        expand("{p}", p=["force", "fggp"]),\n') == {
        ("paper", ("fggp", "force")), ("method", ("fggp", "force"))}
    assert name_lists(Path("x.yaml"), "ablation: {enum: [shuffle, reinit]}\n") == {("ablation", ("reinit", "shuffle"))}
    assert name_lists(Path("x.yaml"), "styles:\n  mnist: a\n  cifar10: b\n") == {("dataset", ("cifar10", "mnist"))}


def test_the_guard_passes_derived_lists_single_names_and_the_tables_own_file():
    f = Path("src/prunebench/somewhere.py")
    for text in ('"|".join(DATASETS)', 'method_info("snip")', 'x = ("snip", "mnist")', 'X = ("dense", "erk")',
                 '"""SNIP, then force the rest."""', 'HELP = "one of: snip and the like"', 'f"{a}|{b}"'):
        assert name_lists(f, text) == set(), text
    assert name_lists(Path("rules/x.smk"), 'dataset="|".join(DATASETS),\n') == set()
    table = Path(methods.__file__)
    assert name_lists(table) == set()                                              # the table itself
    assert ("method", ("fggp", "gmp")) in name_lists(Path(init.__file__), 'X = ("fggp", "gmp")')  # not its table
    assert ("paper", ("force", "spp")) in name_lists(Path(papers.__file__).with_name("x.py"), 'X = ("force", "spp")')
