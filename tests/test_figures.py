"""Every paper figure draws from fake pipeline tables, with and without missing arms, byte-stably."""
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text

from fake_results import fake_tables, write_fake_results, write_table
from prunebench.library.errors import PrunebenchError
from prunebench.library.methods import METHODS
from prunebench.library.schedules import cubic
from prunebench.report import figures
from prunebench.report.arms import catalog, lookup
from prunebench.report.figures.fggp import schedule_density
from prunebench.report.papers import PAPERS
from prunebench.report.tables import load_results

NAMES = sorted(figures.FIGURES)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    return write_fake_results(tmp_path_factory.mktemp("full"), preset="quick")


@pytest.fixture(scope="module")
def partial(tmp_path_factory):
    """Several arms never run, and no history.csv / layers.csv at all."""
    drop = ("grasp", "force", "snip_ai", "snip_unsup", "prospr_m1", "prospr_m5", "gmp", "mfgn_annealed_sparse")
    d = write_fake_results(tmp_path_factory.mktemp("partial"), preset="quick", seeds=(0,), drop_arms=drop)
    (d / "history.csv").unlink()
    (d / "layers.csv").unlink()
    return d


def _titles(fig):
    return "\n".join(ax.get_title() for ax in fig.axes)


def _labels(ax) -> set:
    return set(ax.get_legend_handles_labels()[1])


def test_registry_is_complete():
    expected = {"force_acc_vs_sparsity", "force_walltime", "force_layer_density", "spp_jsv", "spp_isometry_error",
                "spp_supervision", "spp_jsv_sparsity", "spp_training_loss", "prospr_acc_vs_sparsity",
                "prospr_meta_steps", "fggp_accuracy", "fggp_schedule", "fggp_ranks", "sanity_checks"} | {
                    f"{p}_forest" for p in PAPERS}
    assert set(figures.FIGURES) == expected
    for name, spec in figures.FIGURES.items():
        assert spec.name == name and callable(spec.function) and spec.paper in PAPERS
        assert spec.reproduces and spec.arms
    table = figures.figure_table_markdown()
    assert all(f"`{n}`" in table for n in expected)


@pytest.mark.parametrize("name", NAMES)
def test_figure_is_byte_stable(name, full, tmp_path):
    a = figures.make_figure(name, full, tmp_path / "a" / name, "quick")
    b = figures.make_figure(name, full, tmp_path / "b" / name, "quick")
    assert [p.name for p in a] == [f"{name}.pdf", f"{name}.png"]
    for pa, pb in zip(a, b):
        assert pa.read_bytes() == pb.read_bytes(), f"{pa.name} differs between two runs"
    pdf, png = a[0].read_bytes(), a[1].read_bytes()
    assert pdf.startswith(b"%PDF") and b"CreationDate" not in pdf and b"prunebench" in pdf
    assert png.startswith(PNG_MAGIC) and b"Software" not in png
    assert sorted(os.listdir(tmp_path / "a")) == [f"{name}.pdf", f"{name}.png"]  # no temp files left


def test_bytes_do_not_depend_on_the_process(full, tmp_path):
    """Same bytes from a fresh interpreter with another hash seed (no set/dict-order leaks)."""
    name = "force_layer_density"
    mine = figures.make_figure(name, full, tmp_path / "here" / name, "quick")
    code = ("import sys; from prunebench.report import figures; "
            f"figures.make_figure({name!r}, sys.argv[1], sys.argv[2], 'quick')")
    env = dict(os.environ, PYTHONHASHSEED="12345")
    subprocess.run([sys.executable, "-c", code, str(full), str(tmp_path / "there" / name)], check=True, env=env)
    for p in mine:
        assert p.read_bytes() == (tmp_path / "there" / p.name).read_bytes()


@pytest.mark.parametrize("name", NAMES)
def test_figure_with_missing_arms_and_tables(name, partial):
    fig = figures.render(name, partial, "quick")
    FigureCanvasAgg(fig).draw()  # the draw is where bad limits / log scales fail
    assert fig.axes or fig.texts


def test_missing_arms_are_noted(partial):
    fig = figures.render("force_acc_vs_sparsity", partial, "quick")
    titles = _titles(fig)
    assert "not run" in titles and "GraSP" in titles and "FORCE" in titles
    fig = figures.render("fggp_accuracy", partial, "quick")
    assert "GMP" in _titles(fig)


def test_no_data_writes_placeholder_and_warns(tmp_path, caplog):
    s, _, _ = fake_tables(preset="quick", seeds=(0,))
    d = tmp_path / "res"
    d.mkdir()
    write_table(s[s["arm"] == "dense"], d / "summary.csv")
    with caplog.at_level(logging.WARNING, logger="prunebench.report.figures"):
        for name in NAMES:
            pdf, png = figures.make_figure(name, d, tmp_path / "out" / name, "quick")
            assert pdf.stat().st_size > 0 and png.read_bytes().startswith(PNG_MAGIC)
    warned = {r.getMessage().split(":")[0] for r in caplog.records if r.levelno == logging.WARNING}
    assert warned == {f"figure {n}" for n in NAMES}


def test_other_preset_rows_are_dropped(full, caplog):
    with caplog.at_level(logging.WARNING, logger="prunebench.report.figures"):
        fig = figures.render("force_acc_vs_sparsity", full, "paper-grid")
    assert not fig.axes and "No data" in fig.texts[0].get_text()


def test_bad_inputs_are_one_line_errors(tmp_path, full):
    with pytest.raises(PrunebenchError, match="missing results table"):
        figures.make_figure("force_walltime", tmp_path / "nowhere", tmp_path / "x")
    with pytest.raises(PrunebenchError, match="unknown figure 'nope'"):
        figures.make_figure("nope", full, tmp_path / "x")
    bad = tmp_path / "bad"
    bad.mkdir()
    write_table(pd.read_csv(full / "summary.csv").drop(columns=["final_acc"]), bad / "summary.csv")
    with pytest.raises(PrunebenchError, match="lacks column.*final_acc"):
        figures.make_figure("force_walltime", bad, tmp_path / "x")
    assert not list(tmp_path.glob("x*"))


def test_a_changed_table_is_a_checksum_error(tmp_path, full):
    bad = tmp_path / "tampered"
    shutil.copytree(full, bad)
    data = bytearray((bad / "summary.csv").read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    (bad / "summary.csv").write_bytes(bytes(data))
    with pytest.raises(PrunebenchError, match="checksum mismatch in results table .*summary.csv"):
        load_results(bad, "quick")
    (bad / "summary.csv.sha256").unlink()
    with pytest.raises(PrunebenchError, match="has no checksum file"):
        load_results(bad, "quick")


def test_one_style_per_arm(full):
    arms = load_results(full, "quick").arms
    plain = [a for a in arms.values() if a.known and not a.is_variant and a.meta_steps is None and a.start == "init"]
    styles = [(a.style["color"], a.style["marker"]) for a in plain]
    assert len(set(styles)) == len(styles) and {a.method for a in plain} >= {"snip", "force", "grasp", "random"}
    assert arms["snip_ai"].style["color"] == arms["snip"].style["color"] and arms["snip_ai"].style["fillstyle"] == "none"
    assert arms["fggp_sparse"].style["color"] == arms["fggp"].style["color"]
    assert arms["snip_ai"].label == "SNIP + AI" and arms["prospr_m5"].label == "ProsPr (M=5)"
    assert arms["snip_unsup"].label == "SNIP (unsup.)" and arms["fggp_sparse"].label == "FGGP (50% sparse start)"
    assert arms["snip_shuffle"].label == "SNIP (layer-wise shuffle)"
    assert lookup(arms, "someday_new").style == lookup(arms, "someday_new").style


def test_labels_and_styles_come_from_columns_not_names():
    """An arm named anything gets its label from what the grid says it runs; two arms the columns cannot tell
    apart get their names added and styles of their own."""
    s = pd.DataFrame([dict(arm="x1", method="force", isometry=False), dict(arm="x2", method="force", isometry=False),
                      dict(arm="ai", method="snip", isometry=True), dict(arm="z", method="snip", ablation="invert",
                                                                         ablation_of="ai")])
    arms = catalog(s)
    assert arms["x1"].label == "FORCE" and arms["x2"].label == "FORCE [x2]"
    assert arms["x1"].style != arms["x2"].style
    assert arms["ai"].label == "SNIP + AI" and arms["z"].label == "SNIP + AI (inverted scores)"
    assert list(arms) == ["ai", "z", "x1", "x2"]  # method-table order (SNIP before FORCE), ablations after
    assert METHODS["force"].label == "FORCE"


def test_cubic_schedule_is_the_librarys():
    assert schedule_density(0.0, 1.0, 0.1) == pytest.approx(1.0)
    assert schedule_density(0.4, 1.0, 0.1) == pytest.approx(cubic(0.5, 1.0, 0.1)) == pytest.approx(0.1 + 0.9 * 0.5 ** 3)
    assert schedule_density([0.8, 1.0], 0.5, 0.02) == pytest.approx([0.02, 0.02])


def test_make_all_figures(full, tmp_path):
    out = figures.make_all_figures(full, tmp_path, "quick", names=["fggp_ranks", "spp_jsv"])
    assert sorted(out) == ["fggp_ranks", "spp_jsv"]
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["fggp_ranks.pdf", "fggp_ranks.png", "spp_jsv.pdf",
                                                               "spp_jsv.png"]


def test_preset_filter_reaches_layers_and_history(full, tmp_path):
    both = tmp_path / "both"
    both.mkdir()
    for name in ("summary.csv", "layers.csv", "history.csv"):
        a = pd.read_csv(full / name)
        b = a.copy()
        if "preset" in b:
            b["preset"] = "other"
        b["seed"] = b["seed"] + 100
        write_table(pd.concat([a, b]), both / name)
    res = load_results(both, "quick")
    assert set(res.summary["seed"]) == {0, 1} and set(res.layers["seed"]) == {0, 1}
    assert set(res.history["seed"]) == {0, 1}


# ------------------------------------------------------------------------------ one panel per init
def _two_inits(tmp_path):
    """mlp-7-tanh masks under two init schemes whose per-layer densities differ."""
    s, lay, h = fake_tables(preset="quick", grids=[("mnist", "mlp-7-tanh", ("snip", "random"), (0.9,),
                                                    ("xavier_normal", "spp_orthogonal"))])
    lay = lay.copy()
    ortho = lay["init"] == "spp_orthogonal"
    lay.loc[ortho, "density"] = 0.5  # unmistakable: the xavier masks have densities near 0.1
    d = tmp_path / "inits"
    for df, n in ((s, "summary.csv"), (lay, "layers.csv"), (h, "history.csv")):
        write_table(df, d / n)
    return d, lay


def test_layer_density_keeps_init_schemes_apart(tmp_path):
    d, lay = _two_inits(tmp_path)
    fig = figures.render("force_layer_density", d, "quick")
    assert len(fig.axes) == 2
    titles = [ax.get_title() for ax in fig.axes]
    assert any("spp_orthogonal" in t for t in titles) and any("xavier_normal" in t for t in titles)
    for ax in fig.axes:
        init = "spp_orthogonal" if "spp_orthogonal" in ax.get_title() else "xavier_normal"
        want = lay[(lay["init"] == init) & (lay["arm"] == "snip")].groupby("layer_index")["density"].mean()
        snip = [ln for ln in ax.get_lines() if ln.get_label() == "SNIP"][0]
        assert np.allclose(snip.get_ydata(), want.to_numpy())  # not the average over both inits


def test_schedule_panels_split_by_init_too(tmp_path):
    s, lay, h = fake_tables(preset="quick", grids=[("cifar10", "resnet20", ("fggp",), (0.9,),
                                                    ("kaiming_normal", "xavier_normal"))])
    d = tmp_path / "fg"
    for df, n in ((s, "summary.csv"), (lay, "layers.csv"), (h, "history.csv")):
        write_table(df, d / n)
    fig = figures.render("fggp_schedule", d, "quick")
    assert len(fig.axes) == 2 and sum("xavier_normal" in ax.get_title() for ax in fig.axes) == 1


# ------------------------------------------------------------------------------ sanity checks
def test_sanity_checks_draws_each_method_beside_its_ablations(full):
    fig = figures.render("sanity_checks", full, "quick")
    assert len(fig.axes) == 1 and "init kaiming_normal" in fig.axes[0].get_title()
    assert {"SNIP", "SNIP (layer-wise shuffle)", "SNIP (inverted scores)", "SNIP (reinitialized)", "FORCE",
            "FORCE (layer-wise shuffle)", "Dense"} <= _labels(fig.axes[0])
    bars = {c.get_label(): c for c in fig.axes[0].containers}
    snip, inv = bars["SNIP"].lines[0], bars["SNIP (inverted scores)"].lines[0]
    assert len(snip.get_xdata()) == 3 and snip.get_ydata()[0] > inv.get_ydata()[0]


def test_sanity_checks_notes_missing_ablations_and_placeholder(tmp_path):
    d = write_fake_results(tmp_path / "a", preset="quick", seeds=(0,), drop_arms=("snip_invert", "force"))
    fig = figures.render("sanity_checks", d, "quick")
    t = fig.axes[0].get_title().replace("\n", " ")
    assert t.endswith("not run: FORCE")  # its shuffle ran; an ablation run nowhere is not expected
    assert "SNIP (inverted scores)" not in _labels(fig.axes[0])
    d = write_fake_results(tmp_path / "b", preset="quick", seeds=(0,),
                           drop_arms=("snip_shuffle", "snip_invert", "snip_reinit", "force_shuffle"))
    fig = figures.render("sanity_checks", d, "quick")
    assert not fig.axes and "ablation" in fig.texts[0].get_text()


# ------------------------------------------------------------------------------ what the review asked for
def _spp_mnist(tmp_path, seeds=(0, 1, 2), dense_diverged=True):
    """An spp-mnist-like grid: one sparsity, four inits, SNIP / SNIP + AI / unsupervised SNIP / dense, with the
    runs' histories (every 1000 of 10000 steps); the dense runs of every init but one diverged."""
    inits = ("kaiming_normal", "lecun_normal", "spp_orthogonal", "xavier_normal")
    s, lay, h = fake_tables(preset="spp-mnist", seeds=seeds,
                            grids=[("mnist", "mlp-7-tanh", ("dense", "snip", "snip_ai", "snip_unsup"), (0.9,), inits)])
    s = s.copy()
    s["max_steps"], s["eval_every"] = 500, 100
    if dense_diverged:
        bad = (s["arm"] == "dense") & (s["init"] != "spp_orthogonal")
        s.loc[bad, ["diverged", "final_acc"]] = [True, np.nan]
        s.loc[bad, "diverged_step"] = 100
        h = h[~h.set_index(["arm", "init"]).index.isin(s.loc[bad, ["arm", "init"]].apply(tuple, axis=1))]
    d = tmp_path / "spp"
    for df, n in ((s, "summary.csv"), (lay, "layers.csv"), (h, "history.csv")):
        write_table(df, d / n)
    return d


def test_one_sparsity_draws_error_bars_per_init_on_the_claims_metric(tmp_path):
    """The review: bands over one x were invisible, the metric was not the claims', the dense reference was
    silently missing. Now: error bars, official_acc, and a note where the baseline has no result."""
    fig = figures.render("spp_isometry_error", _spp_mnist(tmp_path), "spp-mnist")
    ax = fig.axes[0]
    assert "official_acc" in ax.get_ylabel()
    bars = {c.get_label(): c for c in ax.containers}
    assert {"SNIP", "SNIP + AI"} <= set(bars)
    assert len(bars["SNIP"].lines[0].get_xdata()) == 4          # one point per init, with an error bar each
    assert [t.get_text() for t in ax.get_xticklabels()] == ["kaiming\nnormal", "lecun\nnormal", "spp\northogonal",
                                                            "xavier\nnormal"]
    notes = " ".join(t.get_text() for t in ax.texts).replace("\n", " ")
    assert "dense: no result under kaiming_normal, lecun_normal, xavier_normal" in notes
    lo, hi = ax.get_ylim()
    assert hi - lo >= 2.0                                     # no 0.1-point axis


def test_titles_name_the_init_once_and_say_what_else_ran(tmp_path):
    s, lay, h = fake_tables(preset="quick", grids=[("mnist", "mlp-7-tanh", ("snip", "grasp"), (0.9, 0.98),
                                                    ("orthogonal",)),
                                                   ("mnist", "mlp-7-tanh", ("snip",), (0.9, 0.98), ("xavier_normal",)),
                                                   ("mnist", "lenet300", ("snip", "grasp"), (0.9,), ("kaiming_normal",))])
    d = tmp_path / "t"
    for df, n in ((s, "summary.csv"), (lay, "layers.csv"), (h, "history.csv")):
        write_table(df, d / n)
    titles = [ax.get_title().replace("\n", " ") for ax in figures.render("force_acc_vs_sparsity", d, "quick").axes]
    mlp = next(t for t in titles if "mlp-7-tanh" in t)
    assert mlp.count("init orthogonal") == 1 and "also run: xavier_normal" in mlp and "of 2 inits" not in mlp


def test_panels_with_one_arm_of_a_comparison_are_left_out(tmp_path):
    s, lay, h = fake_tables(preset="quick", grids=[("mnist", "lenet300", ("snip", "force"), (0.9,), ("kaiming_normal",)),
                                                   ("mnist", "mlp-7-tanh", ("snip",), (0.9,), ("orthogonal",))])
    d = tmp_path / "t"
    write_table(s, d / "summary.csv")
    fig = figures.render("force_acc_vs_sparsity", d, "quick")
    assert len(fig.axes) == 1 and "lenet300" in fig.axes[0].get_title()


def test_spp_jsv_says_how_many_examples_each_stage_used(tmp_path):
    s, lay, h = fake_tables(preset="quick")
    s = s.copy()
    d = tmp_path / "j"
    write_table(s, d / "summary.csv")
    title = figures.render("spp_jsv", d, "quick")._suptitle.get_text().replace("\n", " ")
    assert "Jacobians of 10 training examples per seed" in title
    s.loc[s["jsv_isometry_mean"].notna(), "jsv_isometry_examples"] = 5000
    s.loc[s["jsv_prune_mean"].notna(), ["jsv_init_examples", "jsv_prune_examples"]] = 5000
    s.loc[s["jsv_isometry_mean"].notna(), "jsv_isometry_examples"] = 10
    write_table(s, d / "summary.csv")
    title = figures.render("spp_jsv", d, "quick")._suptitle.get_text().replace("\n", " ")
    assert "5000 (after init), 5000 (after pruning), 10 (after approx. isometry)" in title
    assert "mean ± std over seeds" not in title and "SD within a run" in title
    d2 = tmp_path / "k"
    write_table(s.drop(columns=["jsv_examples", "jsv_init_examples", "jsv_prune_examples", "jsv_isometry_examples"]),
                d2 / "summary.csv")
    assert "number of examples not recorded" in figures.render("spp_jsv", d2, "quick")._suptitle.get_text()


def test_forest_plot_has_one_panel_per_claim_with_a_pooled_row(full):
    fig = figures.render("spp_forest", full, "quick")
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert any(t.startswith("spp.ai.improves-accuracy (claim)") for t in titles)
    assert any("(check)" in t for t in titles)
    for ax in fig.axes:
        assert ax.get_yticklabels()[-1].get_text().startswith("pooled (")


def test_jsv_against_sparsity_and_training_curves(tmp_path, full):
    fig = figures.render("spp_jsv_sparsity", full, "quick")
    assert fig.axes and "remaining weights" in fig.axes[0].get_xlabel()
    fig = figures.render("spp_training_loss", _spp_mnist(tmp_path), "spp-mnist")
    assert len(fig.axes) == 4 and all({"SNIP", "SNIP + AI"} <= _labels(ax) for ax in fig.axes)


# ------------------------------------------------------------------------------ text layout
def _texts(fig):
    """Every text the renderer draws (tick labels only of the ticks inside the view, as matplotlib draws)."""
    out = list(fig.texts) + ([fig._suptitle] if fig._suptitle is not None else [])
    for leg in fig.legends:
        out += leg.get_texts()
    for ax in fig.axes:
        out += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label] + list(ax.texts)
        for axis in (ax.xaxis, ax.yaxis):
            out += [t.label1 for t in axis._update_ticks()]
        if ax.get_legend() is not None:
            out += ax.get_legend().get_texts()
    return [t for t in out if isinstance(t, Text) and t.get_visible() and t.get_text().strip()]


@pytest.mark.parametrize("which", ["full", "partial"])
@pytest.mark.parametrize("name", NAMES)
def test_text_stays_in_the_figure_and_titles_do_not_overlap(name, which, request):
    fig = figures.render(name, request.getfixturevalue(which), "quick")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    box = fig.bbox
    for t in _texts(fig):
        bb = t.get_window_extent(renderer)
        assert bb.x0 >= box.x0 - 1 and bb.x1 <= box.x1 + 1 and bb.y0 >= box.y0 - 1 and bb.y1 <= box.y1 + 1, \
            f"{name}: text {t.get_text()!r} runs off the figure ({bb} outside {box})"
    titles = [ax.title for ax in fig.axes if ax.get_title()]
    if fig._suptitle is not None:
        titles.append(fig._suptitle)
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in titles]
    for i, (ta, a) in enumerate(boxes):
        for tb, b in boxes[i + 1:]:
            assert not a.overlaps(b), f"{name}: titles overlap: {ta!r} and {tb!r}"
    # no phrase split across lines: the statistic and every arm named as not run stay whole
    sup = fig._suptitle.get_text() if fig._suptitle is not None else ""
    if "mean ± std" in sup.replace("\n", " "):
        assert any(ln.endswith("mean ± std over seeds") for ln in sup.split("\n"))
    known = {a.label for a in load_results(request.getfixturevalue(which), "quick").arms.values()}
    known |= {m.label for m in METHODS.values()} | {f"{m.label} (50% sparse start)" for m in METHODS.values()}
    for ax in fig.axes:
        title = ax.get_title()
        if "not run:" in title:
            listed = title[title.index("not run:") + len("not run:"):].replace("\n", " ")
            names = [x.strip() for x in listed.split(", ")]
            assert all(n in known or "@" in n for n in names), f"{name}: {names}"
            for ln in title.split("\n"):
                assert not ln.endswith(("(", "+", "·")), f"{name}: line {ln!r} ends mid-phrase"


def test_a_dead_dense_seed_is_not_averaged_into_the_reference(tmp_path):
    """The quick report's LeNet-5 dense baseline was 31 % ± 28 %: one seed at 11.35 % (a constant prediction),
    one at 51 %. The reference line is the trained seed's, and the panel says one was left out."""
    s, lay, h = fake_tables(preset="quick", seeds=(0, 1),
                            grids=[("mnist", "lenet300", ("dense", "snip", "force"), (0.98,), ("kaiming_normal",))])
    s = s.copy()
    s.loc[(s["arm"] == "dense") & (s["seed"] == 0), ["final_acc", "best_acc"]] = 0.1135
    d = tmp_path / "dead"
    write_table(s, d / "summary.csv")
    ax = figures.render("force_acc_vs_sparsity", d, "quick").axes[0]
    dense = [ln for ln in ax.get_lines() if ln.get_label() == "Dense"][0]
    good = s[(s["arm"] == "dense") & (s["seed"] == 1)]["final_acc"].iloc[0]
    assert dense.get_ydata()[0] == pytest.approx(good * 100)
    assert "dense baseline: 1 at chance of 2 seeds left out" in " ".join(t.get_text() for t in ax.texts).replace("\n", " ")
