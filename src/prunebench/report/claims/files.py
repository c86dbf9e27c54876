"""Claim files: find, load and validate `paper/reference/<paper>.yaml` (schema `paper/reference/schema.yaml`).

    reference_dir() -> Path                      # the one place that says where the claim files live
    load_claims(paths, schema=None) -> list[PaperClaims]   # files or folders; one-line PrunebenchError on bad files
    claims_for(names) -> list[PaperClaims]       # a preset's `claims:` list (paper keys) from reference_dir()
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import yaml

from prunebench.library.errors import PrunebenchError
from prunebench.report import resources
from prunebench.report.outcomes import TestProtocol, is_history_metric

ROLES = ("claim", "check")
ACC_METRICS = ("final_acc", "best_acc")


def reference_dir() -> Path:
    """Where the shipped claim files and their schema live (package data: a checkout's paper/reference/)."""
    return resources.reference_dir()


@dataclass
class PaperClaims:
    paper: str
    title: str
    path: str
    claims: list          # validated claim dicts, file defaults merged in (metric, quantifier, role)
    reported: list        # the paper's per-cell numbers (slots; value None until transcribed)
    meta: dict = field(default_factory=dict)   # citation, arxiv, code, notes
    protocol: TestProtocol | None = None       # how the paper's test script reports accuracy
    default_metric: str = "final_acc"          # the metric of the paper's accuracy claims (`defaults`)

    def metrics(self) -> set:
        """Every metric the claims read (the report derives the ones summary.csv lacks)."""
        out = set()
        for c in self.claims:
            out.add(c["metric"])
            for k in ("lhs", "rhs"):
                if k in c:
                    out.add(c[k].get("metric", c["metric"]))
        if self.protocol is not None:
            out.add(self.protocol.metric)
        return out


def _expand(paths) -> list[Path]:
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out = []
    for p in paths:
        p = resources.claims_path(p)  # a path, or a shipped paper's key ("force")
        if p.is_dir():
            out += sorted(q for q in p.glob("*.yaml") if q.name != "schema.yaml")
        elif p.exists():
            out.append(p)
        else:
            raise PrunebenchError(f"missing claims file {str(p)!r}")
    if not out:
        raise PrunebenchError(f"no claims files in {', '.join(str(p) for p in paths)!r}")
    return out


def _read_yaml(path: Path):
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise PrunebenchError(f"{path}:{where} invalid YAML: {problem}") from None
    except UnicodeDecodeError as e:
        raise PrunebenchError(f"{path}: not UTF-8 text ({e.reason})") from None


def _one_line(s: str, n=180) -> str:
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[: n - 1] + "…"


def _load_schema(schema, first: Path):
    if isinstance(schema, dict):
        return schema
    candidates = [Path(schema)] if schema is not None else [first.parent / "schema.yaml",
                                                             reference_dir() / "schema.yaml"]
    for c in candidates:
        if c.exists():
            doc = _read_yaml(c)
            if not isinstance(doc, dict):
                raise PrunebenchError(f"{c}: schema is not a mapping")
            return doc
    raise PrunebenchError(f"no claims schema found (looked at {', '.join(str(c) for c in candidates)})")


def _claim_metrics(c: dict) -> list:
    out = [c.get("metric")] + [c[k].get("metric") for k in ("lhs", "rhs") if k in c]
    return [m for m in out if m]


def validate_file(path, doc, schema) -> None:
    """Raise a one-line PrunebenchError naming the file (and the claim id) on the first problem."""
    if not isinstance(doc, dict):
        raise PrunebenchError(f"{path}: expected a mapping with keys paper, title, claims; got {type(doc).__name__}")
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(doc), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    if errors:
        err = jsonschema.exceptions.best_match(errors)
        loc = list(err.absolute_path)
        where = ""
        if len(loc) >= 2 and loc[0] == "claims" and isinstance(loc[1], int):
            claim = doc["claims"][loc[1]]
            cid = claim.get("id") if isinstance(claim, dict) else None
            rest = "/".join(map(str, loc[2:]))
            where = f"claim {cid!r}" if cid else f"claims[{loc[1]}]"
            where += f" field {rest!r}" if rest else ""
        elif loc:
            where = "field " + repr("/".join(map(str, loc)))
        raise PrunebenchError(_one_line(f"{path}: {where + ': ' if where else ''}{err.message}"))
    protocol_metric = (doc.get("test_protocol") or {}).get("metric")
    default_metric = (doc.get("defaults") or {}).get("metric")
    seen = set()
    for c in doc.get("claims", []):
        if c["id"] in seen:
            raise PrunebenchError(f"{path}: claim {c['id']!r}: duplicate id")
        seen.add(c["id"])
        if c["kind"] == "best" and c["arm"] in c["arms"]:
            raise PrunebenchError(f"{path}: claim {c['id']!r}: 'arms' (the competitors) must not contain {c['arm']!r}")
        if c.get("op") == ">=" and "margin" not in c:
            raise PrunebenchError(f"{path}: claim {c['id']!r}: op '>=' is a non-inferiority claim: state its margin")
        for m in _claim_metrics(c) + ([default_metric] if default_metric else []):
            if m == "official_acc" and protocol_metric != "official_acc":
                raise PrunebenchError(f"{path}: claim {c['id']!r}: metric 'official_acc' needs a test_protocol "
                                      f"defining it")


def load_claims(paths, schema=None) -> list[PaperClaims]:
    """Load and validate claim files (a file, a folder of *.yaml, or a list of either).

    `schema`: a path or a dict; default: `schema.yaml` beside the first file, else reference_dir()'s.
    Claim ids must be unique across all files."""
    files = _expand(paths)
    sch = _load_schema(schema, files[0])
    out, ids = [], {}
    for path in files:
        doc = _read_yaml(path)
        validate_file(path, doc, sch)
        defaults = doc.get("defaults", {})
        claims = []
        for c in doc["claims"]:
            if c["id"] in ids:
                raise PrunebenchError(f"{path}: claim {c['id']!r}: id already used in {ids[c['id']]}")
            ids[c["id"]] = str(path)
            c = dict(c)
            c.setdefault("metric", defaults.get("metric", "final_acc"))
            c.setdefault("quantifier", defaults.get("quantifier", "all"))
            c.setdefault("role", "claim")
            claims.append(c)
        meta = {k: doc[k] for k in ("citation", "arxiv", "code", "notes") if k in doc}
        reported = [dict(r, metric=r.get("metric", defaults.get("metric", "final_acc"))) for r in doc.get("reported", [])]
        for r in reported:
            if r["metric"] in ACC_METRICS + ("official_acc",) and r["value"] is not None and not 0 <= r["value"] <= 1:
                raise PrunebenchError(f"{path}: reported {r['arm']} {r['dataset']}/{r['model']} s={r['sparsity']}: "
                                      f"{r['metric']} {r['value']!r} must be a fraction in [0, 1] (not percent)")
        protocol = TestProtocol.from_dict(doc["test_protocol"]) if doc.get("test_protocol") else None
        out.append(PaperClaims(doc["paper"], doc["title"], str(path), claims, reported, meta, protocol,
                               defaults.get("metric", "final_acc")))
    return out


def claims_for(names, folder=None) -> list[PaperClaims]:
    """The claim files of the paper keys `names` (a preset's `claims:` list), from `folder` or reference_dir()."""
    folder = Path(folder) if folder is not None else reference_dir()
    return load_claims([folder / f"{n}.yaml" for n in names], schema=folder / "schema.yaml") if names else []


def paper_claims(paper: str) -> PaperClaims | None:
    """The shipped claim file of one paper key (None if it has none)."""
    path = reference_dir() / f"{paper}.yaml"
    return load_claims(path, schema=reference_dir() / "schema.yaml")[0] if path.is_file() else None


def is_accuracy(metric: str) -> bool:
    """A metric in [0, 1] that the report prints in percent."""
    return metric in ACC_METRICS or metric == "official_acc" or (is_history_metric(metric) and "_acc@" in metric)
