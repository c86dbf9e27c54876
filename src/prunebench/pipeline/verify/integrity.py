"""Verify, integrity and identity: every declared output reads back, and says it belongs where it sits.

1. Integrity: safetensors files (masks, inits, AI weights) and results tables pass their content checksums
   (`prunebench.library.artifacts`), JSON files parse.
2. Identity: each artifact's embedded identity matches the cell folder it sits in, under this checkout's
   preset: an init's model, data set, scheme and seed (its path names the seed); a mask's cell hash,
   method, seed, sparsity and the checksum of the init it was pruned from; AI weights' cell hash and the
   checksums of the init and mask they came from; the cell hash of prune.json, isometry.json,
   prune_timing.json and timing.json; manifest.json's cell hash, the checksums of the init, mask and data
   its run trained on and of the metrics.json it wrote. So masks swapped between two cells, two init seeds
   swapped, or a metrics.json moved from another cell are named. What this cannot see: a file forged
   consistently, with its checksum and every identity recomputed; only reproduction (`--reproduce K`)
   catches that.
"""
from __future__ import annotations

from pathlib import Path

from prunebench.library import artifacts
from prunebench.library import methods
from prunebench.library.errors import PrunebenchError
from prunebench.pipeline import grid
from prunebench.pipeline import paths
from prunebench.pipeline.verify.findings import Findings
from prunebench.pipeline.verify.provenance import OPTIONAL, expected_outputs

_KIND = {"mask.safetensors": "mask file", "weights_ai.safetensors": "init file", "checkpoint.safetensors": "checkpoint",
         "final_mask.safetensors": "mask file"}


def check_file(path: Path) -> None:
    """Raise PrunebenchError unless `path` reads back: checksums for tensors and tables, JSON parses."""
    if path.name.endswith(".safetensors"):
        artifacts.load_tensors(path, what=_KIND.get(path.name, "init file"))
    elif path.suffix == ".csv":
        artifacts.verify_checked_file(path)
    elif path.suffix == ".json":
        artifacts.read_json(path)
    else:
        artifacts.check_readable(path)


def check_integrity(cfg: dict, root: Path, found: Findings, log=print) -> None:
    """Point 1 for every declared output of the preset, then point 2 for every cell."""
    outputs = expected_outputs(cfg)
    n = len(outputs)
    bad = set()
    for i, rel in enumerate(sorted(outputs), 1):
        path = root / rel
        if i % 200 == 0:
            log(f"  checked {i}/{n} files")
        if not path.exists():
            if Path(rel).name not in OPTIONAL:
                found.problem(rel, "missing")
            bad.add(rel)
            continue
        found.checked += 1
        try:
            check_file(path)
        except PrunebenchError as e:
            found.problem(rel, str(e))
            bad.add(rel)
    check_identities(cfg, root, found, bad)


# ------------------------------------------------------------------------------------------------------
# 2: identities


class _Reader:
    """Headers and JSON files read once each (an init is shared by every arm of its seed)."""

    def __init__(self, root: Path, bad: set):
        self.root, self.bad, self._meta, self._sum, self._json = root, bad, {}, {}, {}

    def usable(self, rel: str) -> bool:
        return rel not in self.bad and (self.root / rel).is_file()

    def meta(self, rel: str) -> dict:
        if rel not in self._meta:
            self._meta[rel] = artifacts.read_metadata(self.root / rel, _KIND.get(Path(rel).name, "init file"))
        return self._meta[rel]

    def checksum(self, rel: str) -> str:
        if rel not in self._sum:
            self._sum[rel] = artifacts.recorded_checksum(self.root / rel, _KIND.get(Path(rel).name, "init file"))
        return self._sum[rel]

    def json(self, rel: str) -> dict:
        if rel not in self._json:
            doc = artifacts.read_json(self.root / rel)
            self._json[rel] = doc if isinstance(doc, dict) else {}
        return self._json[rel]


def _mismatch(found: Findings, rel: str, doc: dict, expected: dict, what: str) -> bool:
    """Record the first field of `doc` that differs from `expected` (a missing field too); True if any."""
    for key, want in expected.items():
        got = doc.get(key, "(not recorded)")
        if isinstance(want, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
            same = float(got) == want
        else:
            same = got == want
        if not same:
            found.problem(rel, f"{what} records {key} {got!r}, but this cell's is {want!r} (moved or swapped "
                               f"from another cell?)")
            return True
    return False


def _init_identity(c: dict, concern: str) -> dict:
    return {"model": c["model"], "dataset": c["dataset"], "scheme": c["init"], "seed": c["seeds"][concern]}


def check_identities(cfg: dict, root: Path, found: Findings, bad: set = frozenset()) -> None:
    """Point 2 of the module docstring for every cell of the preset (files already found damaged or
    missing, `bad`, are not read again)."""
    r = _Reader(root, set(bad))
    data_sums = {}
    for ds in sorted({c["dataset"] for c in grid.expand(cfg)}):
        rel = paths.data_manifest(cfg["preset"], ds)
        if r.usable(rel):
            data_sums[ds] = r.json(rel).get("content_sha256")
    inits_done = set()
    for c in grid.expand(cfg):
        try:
            _check_cell(cfg, c, r, found, data_sums, inits_done)
        except PrunebenchError as e:  # a header that does not parse: already named by the integrity check
            found.problem(paths.cell_dir(c), str(e))


def _check_cell(cfg, c, r: _Reader, found: Findings, data_sums: dict, inits_done: set) -> None:
    d, h = paths.cell_dir(c), grid.cell_hash(c)
    info = methods.method_info(c["method"])
    for concern in ("init", "reinit") if c.get("reinit") else ("init",):
        rel = paths.init_path(c, concern=concern)
        if rel not in inits_done and r.usable(rel):
            inits_done.add(rel)
            _mismatch(found, rel, r.meta(rel), _init_identity(c, concern), "the init file")
    init_rel, mask_rel, iso_rel = paths.init_path(c), f"{d}/mask.safetensors", f"{d}/weights_ai.safetensors"
    if info.at_init:
        if r.usable(mask_rel):
            want = {"cell_hash": h, "method": c["method"], "seed": c["seeds"]["prune"], "sparsity": float(c["sparsity"]),
                    "model": c["model"], "dataset": c["dataset"]}
            if r.usable(init_rel):
                want["init_sha256"] = r.checksum(init_rel)
            _mismatch(found, mask_rel, r.meta(mask_rel), want, "the mask")
        rel = f"{d}/prune.json"
        if r.usable(rel):
            _mismatch(found, rel, r.json(rel), {"cell_hash": h, "method": c["method"], "seed": c["seeds"]["prune"],
                                                "sparsity": float(c["sparsity"]), "model": c["model"],
                                                "dataset": c["dataset"]}, "prune.json")
        rel = f"{d}/prune_timing.json"
        if r.usable(rel):
            _mismatch(found, rel, r.json(rel), {"cell_hash": h}, "prune_timing.json")
    if c["isometry"]:
        sources = {"cell_hash": h}
        if r.usable(init_rel):
            sources["init_sha256"] = r.checksum(init_rel)
        if r.usable(mask_rel):
            sources["mask_sha256"] = r.checksum(mask_rel)
        if r.usable(iso_rel):
            _mismatch(found, iso_rel, r.meta(iso_rel), {**_init_identity(c, "init"), **sources}, "the AI weights")
        rel = f"{d}/isometry.json"
        if r.usable(rel):
            _mismatch(found, rel, r.json(rel), sources, "isometry.json")
    rel = f"{d}/manifest.json"
    if r.usable(rel):
        _check_manifest(c, rel, r, found, data_sums)


def _check_manifest(c, rel, r: _Reader, found: Findings, data_sums: dict) -> None:
    d, doc = paths.cell_dir(c), r.json(rel)
    config = doc.get("config") if isinstance(doc.get("config"), dict) else {}
    if _mismatch(found, rel, config, {"cell_hash": grid.cell_hash(c)}, "manifest.json"):
        return
    identity = config.get("identity") if isinstance(config.get("identity"), dict) else {}
    train_init = f"{d}/weights_ai.safetensors" if c["isometry"] else paths.train_init_path(c)
    want = {}
    if r.usable(train_init):
        want["init_sha256"] = r.checksum(train_init)
    mask = f"{d}/mask.safetensors"
    if methods.method_info(c["method"]).at_init:
        if r.usable(mask):
            want["mask_sha256"] = r.checksum(mask)
    else:
        want["mask_sha256"] = None
    if data_sums.get(c["dataset"]):
        want["data_sha256"] = data_sums[c["dataset"]]
    if _mismatch(found, rel, identity, want, "manifest.json's run identity"):
        return
    outputs = config.get("outputs_sha256") if isinstance(config.get("outputs_sha256"), dict) else {}
    if r.usable(f"{d}/metrics.json"):
        got = artifacts.sha256_file(r.root / d / "metrics.json")
        if outputs.get("metrics.json") != got:
            found.problem(f"{d}/metrics.json", f"is not the metrics.json its run wrote (manifest.json records sha256 "
                                               f"{outputs.get('metrics.json', '(not recorded)')}, the file has {got})")
    if r.usable(f"{d}/timing.json"):
        _mismatch(found, f"{d}/timing.json", r.json(f"{d}/timing.json"), {"cell_hash": grid.cell_hash(c)},
                  "timing.json")
