"""The README's generated tables match the code (python -m prunebench.pipeline.docs regenerates them)."""
from prunebench.pipeline.docs import CAPTIONS, README, captions_yaml, render


def test_readme_generated_blocks_are_current():
    text = README.read_text()
    assert render(text) == text, "README.md is stale: run `python -m prunebench.pipeline.docs`"


def test_readme_opens_with_the_two_commands():
    lines = [l for l in README.read_text().splitlines() if l.strip()]
    block = lines[lines.index("```sh") + 1: lines.index("```sh") + 3]
    assert block[0].startswith("make figures") and block[1].startswith("make test")


def test_report_captions_are_current():
    assert CAPTIONS.read_text() == captions_yaml(), "report/captions.yaml is stale: run `python -m prunebench.pipeline.docs`"
