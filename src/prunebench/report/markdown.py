"""Markdown formatting of the report's numbers: escaping, percentages, mean ± sd with failures, differences
with intervals, p-values, tables."""
from __future__ import annotations

import math

from prunebench.library.datasets import DATASETS

DATASET_LABELS = {name: spec.display for name, spec in DATASETS.items()}


def md(s) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def pct(v) -> str:
    return f"{v * 100:.2f}"


def value(v, is_pct: bool) -> str:
    if missing(v):
        return "—"
    return f"{v * 100:.2f}%" if is_pct else f"{v:.4g}"


def operand(v: dict, is_pct: bool) -> str:
    """mean ± std (n seeds; failures) of one operand in one setting."""
    body = "no value" if v.get("mean") is None else value(v["mean"], is_pct) + (
        f" ± {value(v['std'], is_pct)}" if v.get("std") is not None else "")
    extra = [f"n={v['n']}"]
    if v.get("failed"):
        extra.append(f"{v['failed']} without a value")
    if v.get("diverged"):
        extra.append(f"{v['diverged']} diverged")
    if v.get("collapsed"):
        extra.append(f"{v['collapsed']} collapsed")
    return f"{body} ({', '.join(extra)})"


def difference(diff, lo, hi, is_pct: bool) -> str:
    """Δ with its interval, e.g. '+1.23 pts [−0.40, +2.86]'."""
    if missing(diff):
        return "—"
    scale, unit = (100.0, " pts") if is_pct else (1.0, "")
    if missing(lo):
        return f"{diff * scale:+.3g}{unit} [no interval]" if not is_pct else f"{diff * scale:+.2f}{unit} [no interval]"
    if is_pct:
        return f"{diff * scale:+.2f}{unit} [{lo * scale:+.2f}, {hi * scale:+.2f}]"
    return f"{diff:+.3g} [{lo:+.3g}, {hi:+.3g}]"


def magnitude(v, is_pct: bool) -> str:
    if missing(v):
        return "—"
    return f"{v * 100:.2f} pts" if is_pct else f"{v:.3g}"


def pvalue(p) -> str:
    if missing(p):
        return "—"
    return "< 0.0001" if p < 1e-4 else f"{p:.2g}"


def table(head: list, rows: list) -> list:
    out = ["| " + " | ".join(md(h) for h in head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(md(c) for c in r) + " |" for r in rows]
    return out


def setting_text(r: dict) -> list:
    """The four setting cells of a claim row."""
    return [DATASET_LABELS.get(r.get("dataset"), str(r.get("dataset", "—"))), str(r.get("model", "—")),
            str(r.get("init", "—")), f"{r['sparsity'] * 100:g}%" if r.get("sparsity") is not None else "—"]
