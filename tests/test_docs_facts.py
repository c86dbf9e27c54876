"""Numbers and names the docs take from the code, tested against it (issue 21 §5): prunable-weight counts
(README "Models", docs/methods.md B.1), the preset table (every preset, its cell count, its stated run time
against the compute its committed report measured), the papers' venues and years (README, docs/methods.md,
report/papers.py, CITATION.cff, the claim files), spec sections cited anywhere, the claims and figures named
in paper/README.md and its commands, and what the profiles' comments say of each other. dvc.yaml's stages:
tests/test_dvc_remote.py; the README's generated tables: tests/test_docs.py."""
import re
import shlex

import pytest
import yaml

from conftest import REPO
from prunebench.cli import COMMANDS, command_parser
from prunebench.library.methods import BUILTIN
from prunebench.library.models import build_model, count_prunable
from prunebench.pipeline.grid import expand, load_config
from prunebench.pipeline.paths import figure_path, report_path
from prunebench.report.figures import FIGURES
from prunebench.report.papers import TABLE as PAPERS

README = (REPO / "README.md").read_text()
SPEC = (REPO / "docs" / "methods.md").read_text()
PAPER_README = (REPO / "paper" / "README.md").read_text()
PRESETS = sorted(p.stem for p in (REPO / "config").glob("*.yaml"))


def table(text: str, header: str) -> list:
    """The rows (lists of cells) of the markdown table whose header line starts with `header`."""
    lines = text.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def counts(cell: str) -> list:
    return [int(n.replace(",", "")) for n in re.findall(r"\d{1,3}(?:,\d{3})+", cell)]


# Which (model, data set) each row's numbers are, in the order they appear.
README_MODELS = {
    "`lenet300`": [("lenet300", "mnist")], "`lenet5`": [("lenet5", "mnist")],
    "`mlp-<D>-<act>`": [("mlp-7-tanh", "mnist")], "`conv4`": [("conv4", "cifar10")],
    "`vgg16`, `vgg19`": [("vgg16", "cifar100"), ("vgg19", "cifar10")],
    "`vgg19_bn_bias`": [("vgg19_bn_bias", "cifar10")],
    "`resnet20/32/56`": [("resnet20", "cifar10"), ("resnet32", "cifar10"), ("resnet56", "cifar10")],
    "`resnet32_grasp`": [("resnet32_grasp", "cifar10")],
    "`resnet18`, `resnet50`": [("resnet18", "tiny-imagenet"), ("resnet50", "cifar10")],
}
SPEC_MODELS = {
    "VGG19 (CIFAR)": [("vgg19", "cifar10")], "VGG19-bn with conv biases": [("vgg19_bn_bias", "cifar10")],
    "VGG16": [("vgg16", "cifar100")], "ResNet-50 (CIFAR)": [("resnet50", "cifar10")],
    "ResNet-18 (Tiny-ImageNet)": [("resnet18", "tiny-imagenet")],
    "ResNet-20 / 32 / 56": [("resnet20", "cifar10"), ("resnet32", "cifar10"), ("resnet56", "cifar10")],
    "ResNet-32 (GraSP)": [("resnet32_grasp", "cifar10")], "MLP-D-act": [("mlp-7-tanh", "mnist")],
    "LeNet-300-100, LeNet-5": [("lenet300", "mnist"), ("lenet5", "mnist")],
}


@pytest.mark.parametrize("doc,header,rows", [
    ("README.md", "| name | definition | prunable weights |", README_MODELS),
    ("docs/methods.md", "| model | as in | definition | prunable weights |", SPEC_MODELS),
])
def test_weight_counts_in_the_docs_are_the_models(doc, header, rows):
    found = {r[0]: r[-1] for r in table((REPO / doc).read_text(), header)}
    assert set(found) == set(rows), f"{doc}: rows changed; map them in this test: {sorted(set(found) ^ set(rows))}"
    for key, models in rows.items():
        want = [count_prunable(build_model(m, d)) for m, d in models]
        assert counts(found[key]) == want, f"{doc} row {key}: says {found[key]!r}, the models have {want}"


def test_the_mlp7_count_is_129400_everywhere():
    assert count_prunable(build_model("mlp-7-tanh", "mnist")) == 129_400
    for text in (README, SPEC):
        assert "128,400" not in text


# ------------------------------------------------------------------------------------------------------
# Presets: the README's table, cell counts, stated run times

def _preset_rows() -> dict:
    rows = table(README, "| preset | what | size |")
    return {re.match(r"`([^`]+)`", r[0]).group(1): r for r in rows}


def test_the_readme_lists_every_preset_with_its_cell_count():
    rows = _preset_rows()
    assert sorted(rows) == PRESETS
    for name, row in rows.items():
        n = int(re.match(r"([\d,]+) cells", row[-1]).group(1).replace(",", ""))
        assert n == len(expand(load_config(name))), f"README: preset {name} has {n} cells?"


def header_comment(preset: str) -> str:
    lines = (REPO / "config" / f"{preset}.yaml").read_text().splitlines()
    return " ".join(l.lstrip("# ") for l in lines[: next(i for i, l in enumerate(lines) if not l.startswith("#"))])


MINUTES = re.compile(r"(\d+) min(?:utes)? on 2 (?:CPU )?cores")


def measured_minutes(preset: str):
    """Training + pruning wall time summed over cells, from the committed report's "Compute used" table."""
    path = REPO / "paper" / f"replication-{preset}.md"
    if not path.exists():
        return None
    rows = table(path.read_text(), "| device | cells | training | pruning |")
    unit = {"h": 60.0, "min": 1.0, "s": 1 / 60}
    total = 0.0
    for r in rows:
        for cell in r[2:4]:
            value, u = cell.split()
            total += float(value) * unit[u]
    return total


@pytest.mark.parametrize("preset", PRESETS)
def test_stated_run_times_agree_and_are_not_below_what_was_measured(preset):
    """Where the README and a preset's header state minutes on 2 cores, they state the same; where a report of
    the preset is committed, the stated time is at least its measured compute spread over the 2 cores."""
    readme = MINUTES.findall(_preset_rows()[preset][-1])
    header = MINUTES.findall(header_comment(preset))
    assert readme == header, f"{preset}: README says {readme} min, config header {header}"
    measured = measured_minutes(preset)
    for m in readme:
        assert measured is None or int(m) >= measured / 2, \
            f"{preset}: {m} min on 2 cores, but its report measured {measured:.0f} min of compute"
    if preset in ("quick", "spp-mnist", "smoke"):  # the CPU presets say how long they take
        assert readme, f"{preset}: no run time in README / config header"


def test_no_ten_minute_quick():
    assert "~10 minutes" not in (REPO / "config" / "quick.yaml").read_text()


# ------------------------------------------------------------------------------------------------------
# Papers: venue and year agree everywhere

def _plain(text: str) -> str:
    return re.sub(r"[^\w\s-]", "", text)


def _venue_year(key: str) -> str:
    doc = yaml.safe_load((REPO / "paper" / "reference" / f"{key}.yaml").read_text())
    return re.search(r"\b([A-Z]{3,}[a-z]*) (\d{4})\b", doc["citation"]).group(0)


@pytest.mark.parametrize("paper", PAPERS, ids=lambda p: p.key)
def test_a_papers_venue_and_year_agree_everywhere(paper):
    vy = _venue_year(paper.key)
    words = " ".join(_plain(paper.title).split()[:2])
    assert paper.citation.endswith(vy), f"report/papers.py: {paper.citation!r}, the claims file: {vy}"
    readme_row = next(r for r in table(README, "| paper | methods here |") if words in _plain(r[0]))
    assert readme_row[0].endswith(vy), f"README: {readme_row[0]!r} vs {vy}"
    spec_row = next(r for r in table(SPEC, "| paper | venue | official code |") if words in _plain(r[0]))
    assert spec_row[1] == vy, f"docs/methods.md: {spec_row[1]!r} vs {vy}"
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    ref = next(r for r in cff["references"] if _plain(r["title"]).startswith(words))
    assert str(ref["year"]) == vy.split()[1] and ref["conference"]["name"].endswith(f"({vy.split()[0]})")


# ------------------------------------------------------------------------------------------------------
# Names

def test_every_cited_spec_section_exists():
    sections = set(re.findall(r"^#{1,3} ([A-E]\.\d+)\b", SPEC, flags=re.M))
    cited = set()
    for path in [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "src").rglob("*.py")]:
        cited |= set(re.findall(r"methods\.md,? ([A-E]\.\d+)", path.read_text()))
    cited |= {s for m in BUILTIN for s in re.findall(r"[A-E]\.\d+", m.section)}
    assert cited and cited <= sections, sorted(cited - sections)


def test_paper_readme_names_every_claim_and_figure_and_its_files():
    ids = set()
    for p in (REPO / "paper" / "reference").glob("*.yaml"):
        if p.name != "schema.yaml":
            ids |= {c["id"] for c in yaml.safe_load(p.read_text())["claims"]}
    section = PAPER_README[PAPER_README.index("## The claims encoded"):PAPER_README.index("## The figures")]
    assert set(re.findall(r"`([a-z]+\.[a-z0-9.-]+)`", section)) == ids
    assert {r[0].strip("`") for r in table(PAPER_README, "| Figure | Paper | Reproduces |")} == set(FIGURES)
    assert report_path("<preset>") == "paper/replication-<preset>.md" and "replication-<preset>.md" in PAPER_README
    assert figure_path("<preset>", "<name>", "pdf") == "figures/<preset>/<name>.pdf"
    assert "figures/<preset>/<name>.pdf" in PAPER_README
    assert not re.search(r"\breplication\.md\b|figures/<name>\.pdf", PAPER_README)


@pytest.mark.parametrize("doc", ["paper/README.md", "docs/dvc-remote.md", "docs/plugins.md"])
def test_prunebench_commands_in_the_docs_parse(doc):
    """Every `prunebench <command> ...` line in a code block is accepted by the command's parser."""
    text = (REPO / doc).read_text()
    lines = [l.split("#")[0].strip() for block in re.findall(r"^```\w*\n(.*?)^```", text, flags=re.M | re.S)
             for l in block.splitlines()]
    cmds = [shlex.split(re.sub(r"^(\.venv/bin/)?", "", l)) for l in lines
            if re.match(r"^(\.venv/bin/)?prunebench [a-z]", l)]
    assert cmds
    for argv in cmds:
        assert argv[1] in COMMANDS, argv
        command_parser(argv[1]).parse_args(argv[2:])


def test_profile_comments_say_what_the_profiles_set():
    default = yaml.safe_load((REPO / "profiles" / "default" / "config.yaml").read_text())
    slurm_text = (REPO / "profiles" / "slurm" / "profile.yaml").read_text()
    slurm = {l.split(":")[0] for l in slurm_text.splitlines() if re.match(r"^[a-z][a-z-]*:", l)}
    # a key set in both would be decided by the default profile (it is applied on top): none is
    assert not set(default) & slurm, set(default) & slurm
    for key in re.findall(r"profiles/default(?:/)? sets (?:a |an |the )?(?:\w+ )?`?([a-z][a-z-]+)", slurm_text):
        assert key in default, f"profiles/slurm says profiles/default sets {key!r}; it does not"
