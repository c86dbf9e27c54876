"""Machine-checkable paper claims (paper/reference/<paper>.yaml; paper/README.md explains every field).

    files    find, load and validate the claim files (`reference_dir`, `load_claims`, `claims_for`)
    samples  a claim's operands as per-seed samples per setting; paired / Welch / one-sample comparisons
    check    one claim's verdict: per-setting tests, Holm over the settings, the quantifier, the pooled estimate

A claim's `role` is `claim` (what the paper states: counted in the report's verdicts) or `check` (an identity,
the objective a method minimises, a sanity-check ablation: reported apart, never counted as a claim that holds).
"""
from prunebench.report.claims.check import KINDS, NOT_RUN, STATUSES, Verdict, check
from prunebench.report.claims.files import (ACC_METRICS, ROLES, PaperClaims, claims_for, is_accuracy, load_claims,
                                            paper_claims, reference_dir, validate_file)

__all__ = ["ACC_METRICS", "KINDS", "NOT_RUN", "ROLES", "STATUSES", "PaperClaims", "Verdict", "check", "claims_for",
           "is_accuracy", "load_claims", "paper_claims", "reference_dir", "validate_file"]
