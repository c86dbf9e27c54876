"""One look for every figure: fonts, sizes, fixed metadata (byte-stable PDF/PNG), the data-set display names.

Colours and markers per arm come from `prunebench.report.arms` (the method table's palette)."""
from __future__ import annotations

import matplotlib
import seaborn as sns

from prunebench.library.datasets import DATASETS
from prunebench.library.methods import DARK_GREY, PALETTE

DPI = 200
CB = list(PALETTE)
DATASET_LABELS = {name: spec.display for name, spec in DATASETS.items()}
PDF_METADATA = {"CreationDate": None, "ModDate": None, "Creator": "prunebench",
                "Producer": f"prunebench via matplotlib {matplotlib.__version__}"}
PNG_METADATA = {"Software": None}
TITLE_SIZE = 8.5
LEGEND_SIZE = 7.5

__all__ = ["CB", "DARK_GREY", "DATASET_LABELS", "DPI", "LEGEND_SIZE", "PDF_METADATA", "PNG_METADATA", "TITLE_SIZE",
           "style_rc"]


def style_rc() -> dict:
    """seaborn whitegrid + paper context, pinned to fonts every machine has (matplotlib's DejaVu)."""
    rc = {}
    rc.update(sns.axes_style("whitegrid"))
    rc.update(sns.plotting_context("paper", font_scale=0.95))
    rc.update({
        "font.family": ["sans-serif"], "font.sans-serif": ["DejaVu Sans"], "mathtext.fontset": "dejavusans",
        "xtick.bottom": True, "ytick.left": True, "axes.titlesize": TITLE_SIZE, "figure.titlesize": TITLE_SIZE,
        "legend.fontsize": LEGEND_SIZE, "legend.title_fontsize": LEGEND_SIZE,
        "figure.dpi": DPI, "savefig.dpi": DPI, "savefig.bbox": None, "savefig.pad_inches": 0.05,
        "svg.hashsalt": "prunebench", "svg.fonttype": "path", "pdf.fonttype": 42, "pdf.compression": 6,
        "path.simplify": True, "text.usetex": False, "axes.unicode_minus": True,
    })
    return rc
