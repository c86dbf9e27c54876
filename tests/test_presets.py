"""Every paper preset runs what the paper's official code ran (docs/methods.md, per method): each main arm
resolves, with defaults filled in, to the official settings, in every grid block; the paper-text variants
and sanity checks are extra arms. The expectations are written here from the spec, independently of the
presets, so a preset edit that drifts from the official code fails."""
import pytest

from conftest import REPO
from prunebench.pipeline.grid import expand, load_config
from prunebench.library.methods import at_init
from prunebench.library.pruners.during import during_class
from prunebench.library.pruners.registry import pruner_class

FORCE_CODE = {"loss": "neg_logit", "bn_mode": "train", "schedule": "exp", "count_rule": "official", "labels": "true"}
GRASP_CODE = {"chunks": 2, "reinit_linear": True, "count_rule": "official", "temperature": 200.0, "bn_mode": "train"}
FGGP_CODE = {"prune_first_layer": False, "count_bias_and_first_conv": True, "final_event": False,
             "magnitude": "pre_step", "update_interval": 2000, "schedule": "cubic", "end_ratio": 0.8}
SPP_SNIP = {"prune_bias": True, "bn_mode": "eval", "loss": "ce", "count_rule": "official"}
FORCE_BATCHES = {"cifar10": 1, "cifar100": 10, "tiny-imagenet": 20}

# preset -> arm -> (method, expected options, expected pruning data settings); "num_batches" may depend on the
# data set (FORCE README), checked separately.
EXPECTED = {
    "force": {
        "snip": ("iter_snip", {**FORCE_CODE, "steps": 1}, {"batch_size": 128}),
        "iter_snip": ("iter_snip", {**FORCE_CODE, "steps": 60}, {"batch_size": 128}),
        "force": ("force", {**FORCE_CODE, "steps": 60}, {"batch_size": 128}),
        "grasp": ("grasp", GRASP_CODE, {"samples_per_class": 10}),
        "iter_snip_ce": ("iter_snip", {**FORCE_CODE, "steps": 60, "loss": "ce"}, {}),
        "force_ce": ("force", {**FORCE_CODE, "steps": 60, "loss": "ce"}, {}),
    },
    "spp": {
        "snip": ("snip", {**SPP_SNIP, "labels": "true"}, {"batch_size": 100, "epoch": True}),
        "snip_ai": ("snip", {**SPP_SNIP, "labels": "true"}, {"batch_size": 100, "epoch": True}),
        "snip_unsup": ("snip", {**SPP_SNIP, "labels": "uniform"}, {"batch_size": 100, "epoch": True}),
    },
    "prospr": {
        "prospr": ("prospr", {"inner_steps": 3, "inner_lr": 0.1, "inner_momentum": 0.0, "mode": "full",
                              "new_data_in_inner": False, "bn_mode": "train", "count_rule": "official"},
                   {"batch_size": 128}),
        "snip": ("prospr", {"inner_steps": 0, "bn_mode": "train", "count_rule": "official"}, {"batch_size": 128}),
        "grasp": ("grasp", GRASP_CODE, {}),
        "synflow": ("synflow", {"iterations": 100, "schedule": "exp", "count_rule": "official"}, {}),
        "force": ("force", {**FORCE_CODE, "steps": 60}, {}),
        "iter_snip": ("iter_snip", {**FORCE_CODE, "steps": 60}, {}),
    },
    "fggp": {a: (a.replace("_sparse", ""), FGGP_CODE, {}) for a in
             ("fggp", "gmp", "mfgn_annealed", "fggp_sparse", "gmp_sparse", "mfgn_annealed_sparse")},
}
EXPECTED["force-check"] = {a: v for a, v in EXPECTED["force"].items() if not a.endswith("_ce")}
EXPECTED["spp-mnist"] = EXPECTED["spp"]
SPP_TRAIN = {"max_steps": 10000, "eval_every": 1000, "batch_size": 100, "lr": 0.1, "momentum": 0.0,
             "weight_decay": 0.0005, "schedule": "constant"}


def _resolved(c):
    cls = pruner_class(c["method"]) if c["method"] in at_init() else during_class(c["method"])
    return cls.Options.from_dict(c["options"]).to_dict()


@pytest.mark.parametrize("preset", sorted(EXPECTED))
def test_main_arms_resolve_to_the_official_settings(preset):
    cfg = load_config(REPO / "config" / f"{preset}.yaml")
    cells = expand(cfg)
    for arm, (method, options, pruning) in EXPECTED[preset].items():
        mine = [c for c in cells if c["arm"] == arm]
        assert mine, f"{preset}: arm {arm!r} is missing"
        for c in mine:
            got = _resolved(c)
            assert c["method"] == method, (preset, arm, c["method"])
            assert {k: got[k] for k in options} == options, (preset, arm, c["dataset"])
            assert {k: c["pruning"].get(k) for k in pruning} == pruning, (preset, arm, c["dataset"])
            if c["method"] in ("iter_snip", "force"):  # FORCE's code: batches per step by data set (its README)
                assert got["num_batches"] == FORCE_BATCHES[c["dataset"]], (preset, arm, c["dataset"])
            if preset.startswith("spp"):
                assert {k: c["train"].get(k) for k in SPP_TRAIN} == SPP_TRAIN and cfg["val_fraction"] == 0.1


def test_grasp_samples_as_its_configs():
    """10 images per class on CIFAR; Tiny-ImageNet 1 image per class in each of 10 iterations, summed."""
    cells = [c for c in expand(load_config(REPO / "config" / "prospr.yaml")) if c["arm"] == "grasp"]
    for c in cells:
        spc, iters = (1, 10) if c["dataset"] == "tiny-imagenet" else (10, 1)
        assert c["pruning"]["samples_per_class"] == spc and _resolved(c)["num_batches"] == iters


def test_sanity_checks_and_text_variants_are_extra_arms():
    for preset, extra in [("force", {"force_ce", "iter_snip_ce", "force_shuffle", "force_invert", "force_reinit"}),
                          ("prospr", {"prospr_newdata", "prospr_shuffle", "prospr_invert", "prospr_reinit"}),
                          ("spp", {"snip_shuffle", "snip_invert", "snip_reinit"}),
                          ("quick", {"snip_shuffle", "snip_invert", "snip_reinit"})]:
        arms = {c["arm"] for c in expand(load_config(REPO / "config" / f"{preset}.yaml"))}
        assert extra <= arms, (preset, extra - arms)
