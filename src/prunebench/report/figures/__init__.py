"""Every paper figure, drawn from the pipeline's tidy tables.

Inputs (written by the aggregator; schema: `prunebench.report.tables`): ``results/<preset>/summary.csv`` (one row per
cell), ``layers.csv`` (per-layer mask density), ``history.csv`` (the evaluations of every run) and the resolved
preset ``config.yaml`` (which claim files a preset checks).

API::

    FIGURES[name] -> FigureSpec(function, paper, reproduces, arms, inputs)
    render(name, results_dir, preset=None, **kw) -> Figure
    make_figure(name, results_dir, out_stem, preset=None, formats=("pdf", "png"), **kw) -> paths
    make_all_figures(results_dir, out_dir, preset=None) -> {name: paths}

Modules: `look` (fonts, sizes, metadata), `registry` (FIGURES), `text` (titles that fit), `panels` (the
public panel API the figure modules build on), one module per paper (`force`, `spp`, `prospr`, `fggp`),
`sanity` (the sanity-check ablations of the at-init methods) and `forest` (one forest plot per paper: every
claim's per-setting difference with its interval, and the pooled estimate).

Every figure function takes a :class:`Results` and keyword options and returns a ``matplotlib.figure.Figure``
(no pyplot, no global backend switch; PNGs are rendered with Agg). Outputs are byte-deterministic for the
same inputs and library versions: fixed PDF/PNG metadata, fixed fonts (DejaVu Sans, shipped with matplotlib),
fixed dpi, ``svg.hashsalt``. Missing arms are noted in the panel title ("not run: ..."); a figure with no data
at all still writes a placeholder saying so (and logs a warning), so the pipeline's outputs always exist.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from prunebench.library.artifacts import atomic_path
from prunebench.library.errors import PrunebenchError
from prunebench.report.figures import fggp, force, forest, prospr, sanity, spp  # noqa: F401  (register the figures)
from prunebench.report.figures.look import DPI, PDF_METADATA, PNG_METADATA, style_rc
from prunebench.report.figures.panels import placeholder
from prunebench.report.figures.registry import FIGURES, FigureSpec
from prunebench.report.papers import order_key as paper_order_key
from prunebench.report.tables import load_results

__all__ = ["FIGURES", "FigureSpec", "figure_table_markdown", "make_all_figures", "make_figure", "render",
           "save_figure"]
FORMATS = ("pdf", "png")


def render(name: str, results, preset: str | None = None, **kw) -> Figure:
    """Build (but do not save) figure `name`. `results`: a folder, a list of folders or a Results."""
    if name not in FIGURES:
        raise PrunebenchError(f"unknown figure {name!r}; choose one of: {', '.join(sorted(FIGURES))}")
    res = load_results(results, preset)
    spec = FIGURES[name]
    with matplotlib.rc_context(style_rc()):
        if res.summary.empty and "summary.csv" in spec.inputs and len(spec.inputs) == 1:
            return placeholder(name, "summary.csv has no rows" + (f" for preset {preset}" if preset else ""), res)
        return spec.function(res, **kw)


def save_figure(fig: Figure, out_stem, formats=FORMATS) -> tuple:
    """Write `<out_stem>.<format>` for each of `formats` (pdf, png) atomically with fixed metadata."""
    out_stem = Path(out_stem)
    if out_stem.suffix in (".pdf", ".png"):
        out_stem = out_stem.with_suffix("")
    paths = []
    with matplotlib.rc_context(style_rc()):  # the PNG first: its bytes must not depend on a PDF drawn before it
        for fmt in sorted(formats, key=lambda f: f != "png"):
            path = out_stem.parent / f"{out_stem.name}.{fmt}"
            with atomic_path(path) as tmp:
                if fmt == "png":
                    FigureCanvasAgg(fig)
                fig.savefig(tmp, format=fmt, metadata=PDF_METADATA if fmt == "pdf" else PNG_METADATA, dpi=DPI)
            paths.append(path)
    return tuple(sorted(paths, key=lambda p: [f"{out_stem.name}.{f}" for f in formats].index(p.name)))


def make_figure(name: str, results_dir, out_stem, preset: str | None = None, formats=FORMATS, **kw) -> tuple:
    """Draw figure `name` from `results_dir` (folder, list of folders or Results) into `<out_stem>.pdf` and
    `<out_stem>.png` (or `formats`). Returns the paths."""
    with matplotlib.rc_context(style_rc()):
        fig = render(name, results_dir, preset, **kw)
        return save_figure(fig, out_stem, formats)


def make_all_figures(results_dir, out_dir, preset: str | None = None, names=None, formats=FORMATS) -> dict:
    """Every registered figure (or `names`) into `<out_dir>/<name>.<format>`; tables read once."""
    res = load_results(results_dir, preset)
    return {name: make_figure(name, res, Path(out_dir) / name, preset, formats) for name in names or sorted(FIGURES)}


def figure_table_markdown() -> str:
    """README-ready table: figure name, paper, what it reproduces, what it draws, inputs."""
    rows = ["| Figure | Paper | Reproduces | Draws | Inputs |", "|---|---|---|---|---|"]
    for name in sorted(FIGURES, key=lambda n: (paper_order_key(FIGURES[n].paper), n)):
        s = FIGURES[name]
        rows.append(f"| `{name}` | {s.paper} | {s.reproduces} | {', '.join(s.arms)} | {', '.join(s.inputs)} |")
    return "\n".join(rows) + "\n"
