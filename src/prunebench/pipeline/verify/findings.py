"""What `prunebench verify` found, and its one-screen summary."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Findings:
    checked: int = 0
    problems: list = field(default_factory=list)      # (path, what): integrity and identity failures
    stale: list = field(default_factory=list)         # (path, why): Snakemake would rerun this
    unrecorded: int = 0                               # outputs with no Snakemake metadata here
    reproduced: list = field(default_factory=list)    # (cell dir, [differences])

    @property
    def ok(self) -> bool:
        return not self.problems and not self.stale and not any(d for _, d in self.reproduced)

    def problem(self, path, what: str) -> None:
        self.problems.append((str(path), what))


def summary(preset: str, found: Findings, limit: int = 8) -> str:
    lines = [f"prunebench verify {preset}:"]
    lines.append(f"  files:      {found.checked} read back; {len(found.problems)} problem(s)")
    for rel, what in found.problems[:limit]:
        lines.append(f"    {rel}: {what}")
    if len(found.problems) > limit:
        lines.append(f"    ... and {len(found.problems) - limit} more")
    rec = "" if not found.unrecorded else f"; {found.unrecorded} output(s) with no Snakemake metadata here (not checked)"
    lines.append(f"  provenance: {len(found.stale)} output(s) would rerun{rec}")
    for rel, why in found.stale[:limit]:
        lines.append(f"    {rel}: {why}")
    if len(found.stale) > limit:
        lines.append(f"    ... and {len(found.stale) - limit} more")
    if found.reproduced:
        bad = [(d, x) for d, x in found.reproduced if x]
        lines.append(f"  reproduced: {len(found.reproduced) - len(bad)} of {len(found.reproduced)} cell(s) identical")
        for d, x in bad:
            lines.append(f"    {d}: {'; '.join(x)}")
    lines.append("  result:     " + ("OK" if found.ok else "MISMATCH"))
    return "\n".join(lines)
