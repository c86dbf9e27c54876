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
from prunebench.report import figures
from prunebench.report.papers import PAPERS
from prunebench.report.arms import ARM_LABELS, arm_label
from prunebench.library.errors import PrunebenchError

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


def test_registry_is_complete():
    expected = {"force_acc_vs_sparsity", "force_walltime", "force_layer_density", "spp_jsv", "spp_isometry_error",
                "spp_supervision", "prospr_acc_vs_sparsity", "prospr_meta_steps", "fggp_accuracy", "fggp_schedule",
                "fggp_ranks", "sanity_checks"}
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
        figures.load_results(bad, "quick")
    (bad / "summary.csv.sha256").unlink()
    with pytest.raises(PrunebenchError, match="has no checksum file"):
        figures.load_results(bad, "quick")


def test_one_style_per_arm():
    pairs = [(st["color"], st["marker"], st["linestyle"], st.get("fillstyle", "full"))
             for st in figures.ARM_STYLES.values()]
    assert len(set(pairs)) == len(pairs)
    assert len({(c, m) for c, m, _, _ in pairs}) == len(pairs)
    assert figures.arm_style("snip_ai")["color"] == figures.arm_style("snip")["color"]
    assert figures.arm_style("snip_ai")["fillstyle"] == "none"
    assert figures.arm_style("fggp_sparse")["color"] == figures.arm_style("fggp")["color"]
    assert figures.arm_style("prospr_m5") == figures.arm_style("prospr")
    assert figures.arm_style("someday_new") == figures.arm_style("someday_new")
    assert figures.arm_label("iter_snip_ai") == "Iter SNIP + AI" and figures.arm_label("prospr_m5") == "ProsPr (M=5)"


def test_cubic_schedule():
    assert figures.cubic_density(0.0, 1.0, 0.1) == pytest.approx(1.0)
    assert figures.cubic_density(0.4, 1.0, 0.1) == pytest.approx(0.1 + 0.9 * 0.5 ** 3)
    assert figures.cubic_density([0.8, 1.0], 0.5, 0.02) == pytest.approx([0.02, 0.02])


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
    res = figures.load_results(both, "quick")
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
    labels = {ln.get_label() for ln in fig.axes[0].get_lines()}
    assert {"SNIP", "SNIP (layer-wise shuffle)", "SNIP (inverted scores)", "SNIP (reinitialized)", "FORCE",
            "FORCE (layer-wise shuffle)", "Dense"} <= labels
    snip = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == "SNIP"][0]
    inv = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == "SNIP (inverted scores)"][0]
    assert len(snip.get_xdata()) == 3 and snip.get_ydata()[0] > inv.get_ydata()[0]


def test_sanity_checks_notes_missing_ablations_and_placeholder(tmp_path):
    d = write_fake_results(tmp_path / "a", preset="quick", seeds=(0,), drop_arms=("snip_invert", "force"))
    fig = figures.render("sanity_checks", d, "quick")
    t = fig.axes[0].get_title().replace("\n", " ")
    assert t.endswith("not run: FORCE")  # its shuffle ran; an ablation run nowhere is not expected
    assert "SNIP (inverted scores)" not in {ln.get_label() for ln in fig.axes[0].get_lines()}
    d = write_fake_results(tmp_path / "b", preset="quick", seeds=(0,),
                           drop_arms=("snip_shuffle", "snip_invert", "snip_reinit", "force_shuffle"))
    fig = figures.render("sanity_checks", d, "quick")
    assert not fig.axes and "ablation" in fig.texts[0].get_text()


def test_the_report_embeds_the_sanity_figure_where_claims_need_it():
    spec = figures.FIGURES["sanity_checks"]
    assert "beats_ablation" in spec.claim_kinds


# ------------------------------------------------------------------------------ spp_jsv
def test_spp_jsv_states_the_number_of_examples(tmp_path):
    s, lay, h = fake_tables(preset="quick")
    s = s.copy()
    s["jsv_examples"] = np.where(s["jsv_init_mean"].notna(), 10, np.nan)
    d = tmp_path / "j"
    write_table(s, d / "summary.csv")
    title = figures.render("spp_jsv", d, "quick")._suptitle.get_text().replace("\n", " ")
    assert "Jacobians of 10 training examples per seed" in title
    d2 = tmp_path / "k"
    write_table(s.drop(columns=["jsv_examples"]), d2 / "summary.csv")
    assert "number of examples not recorded" in figures.render("spp_jsv", d2, "quick")._suptitle.get_text()


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
    known = set(ARM_LABELS.values()) | {arm_label(a) for a in ("snip_ai", "random_ai", "prospr_m1", "prospr_m5",
                                                               "gmp_sparse", "mfgn_annealed_sparse", "snip_invert",
                                                               "snip_shuffle", "snip_reinit", "force_shuffle")}
    for ax in fig.axes:
        title = ax.get_title()
        if "not run:" in title:
            listed = title[title.index("not run:") + len("not run:"):].replace("\n", " ")
            names = [x.strip() for x in listed.split(", ")]
            assert all(n in known or "@" in n for n in names), f"{name}: {names}"
            for ln in title.split("\n"):
                assert not ln.endswith(("(", "+", "·")), f"{name}: line {ln!r} ends mid-phrase"
