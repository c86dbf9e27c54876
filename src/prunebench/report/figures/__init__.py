"""Every paper figure, drawn from the pipeline's tidy tables.

Inputs (written by the aggregator; schema: `prunebench.report.tables`): ``results/<preset>/summary.csv`` (one row per
trained cell), ``layers.csv`` (per-layer mask density) and ``history.csv`` (per-epoch curves).

API::

    FIGURES[name] -> FigureSpec(function, paper, reproduces, arms, inputs)
    render(name, results_dir, preset=None, **kw) -> Figure
    make_figure(name, results_dir, out_stem, preset=None, **kw) -> (pdf_path, png_path)
    make_all_figures(results_dir, out_dir, preset=None) -> {name: (pdf_path, png_path)}
    load_results(results_dir_or_dirs, preset=None) -> Results

Modules: `style` (palette, fonts, registry, panel/title/legend helpers), one module per paper (`force`,
`spp`, `prospr`, `fggp`) and `sanity` (the sanity-check ablations of the at-init methods). Arm names,
labels and styles: `prunebench.report.arms`.

Every figure function takes a :class:`Results` and keyword options and returns a
``matplotlib.figure.Figure`` (no pyplot, no global backend switch; PNGs are rendered with Agg).
Outputs are byte-deterministic for the same inputs and library versions: fixed PDF/PNG metadata,
fixed fonts (DejaVu Sans, shipped with matplotlib), fixed dpi, ``svg.hashsalt``.
Missing arms are noted in the panel title ("not run: ..."); a figure with no data at all still
writes a placeholder saying so (and logs a warning), so the pipeline's outputs always exist.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from prunebench.report.arms import ARM_LABELS, ARM_STYLES, arm_label, arm_style  # noqa: F401
from prunebench.library.errors import PrunebenchError
from prunebench.report.figures import fggp, force, prospr, sanity, spp  # noqa: F401  (registers the figures)
from prunebench.report.figures.fggp import FGGP_ARMS, T_END, cubic_density  # noqa: F401
from prunebench.report.figures.style import (  # noqa: F401
    CB, DATASET_LABELS, DPI, FIGURES, PDF_METADATA, PNG_METADATA, FigureSpec, _placeholder, _style_rc,
)
from prunebench.library.artifacts import atomic_path
from prunebench.report.papers import order_key as paper_order_key
from prunebench.report.tables import HISTORY_COLUMNS, LAYERS_COLUMNS, SUMMARY_COLUMNS, Results, load_results  # noqa: F401



def render(name: str, results, preset: str | None = None, **kw) -> Figure:
    """Build (but do not save) figure `name`. `results`: a folder, a list of folders or a Results."""
    if name not in FIGURES:
        raise PrunebenchError(f"unknown figure {name!r}; choose one of: {', '.join(sorted(FIGURES))}")
    res = load_results(results, preset)
    spec = FIGURES[name]
    with matplotlib.rc_context(_style_rc()):
        if res.summary.empty and "summary.csv" in spec.inputs and len(spec.inputs) == 1:
            return _placeholder(name, "summary.csv has no rows" + (f" for preset {preset}" if preset else ""), res)
        return spec.function(res, **kw)


def save_figure(fig: Figure, out_stem) -> tuple[Path, Path]:
    """Write `<out_stem>.pdf` and `<out_stem>.png` atomically with fixed metadata (byte-stable)."""
    out_stem = Path(out_stem)
    if out_stem.suffix in (".pdf", ".png"):
        out_stem = out_stem.with_suffix("")
    paths = (out_stem.parent / (out_stem.name + ".pdf"), out_stem.parent / (out_stem.name + ".png"))
    with matplotlib.rc_context(_style_rc()):
        with atomic_path(paths[0]) as tmp:
            fig.savefig(tmp, format="pdf", metadata=PDF_METADATA, dpi=DPI)
        with atomic_path(paths[1]) as tmp:
            FigureCanvasAgg(fig)
            fig.savefig(tmp, format="png", metadata=PNG_METADATA, dpi=DPI)
    return paths


def make_figure(name: str, results_dir, out_stem, preset: str | None = None, **kw) -> tuple[Path, Path]:
    """Draw paper figure `name` from `results_dir` (folder, list of folders or Results) into
    `<out_stem>.pdf` and `<out_stem>.png`. Returns the two paths."""
    with matplotlib.rc_context(_style_rc()):
        fig = render(name, results_dir, preset, **kw)
        return save_figure(fig, out_stem)


def make_all_figures(results_dir, out_dir, preset: str | None = None, names=None) -> dict:
    """Every registered figure (or `names`) into `<out_dir>/<name>.{pdf,png}`; tables read once."""
    res = load_results(results_dir, preset)
    out = {}
    for name in names or sorted(FIGURES):
        out[name] = make_figure(name, res, Path(out_dir) / name, preset)
    return out


def figure_table_markdown() -> str:
    """README-ready table: figure name, paper, what it reproduces, arms drawn, inputs."""
    rows = ["| Figure | Paper | Reproduces | Arms | Inputs |", "|---|---|---|---|---|"]
    for name in sorted(FIGURES, key=lambda n: (paper_order_key(FIGURES[n].paper), n)):
        s = FIGURES[name]
        rows.append(f"| `{name}` | {s.paper} | {s.reproduces} | {', '.join(s.arms)} | {', '.join(s.inputs)} |")
    return "\n".join(rows) + "\n"
