"""Publishing: every protocol's report with its data files, the index and the DCGAN vs WGAN-GP stability page,
from a real MLflow SQLite store.

The module's store holds real tiny runs (``run_protocol``): a Fashion protocol with a per-epoch curve (dcgan and
wgan-gp, seeds 0 and 1, 2 epochs of 192 images, domain FID of 64 samples, a curve of 32) and a 2D ring protocol
without a curve; and tracked runs whose final values are set here (``log_run``), so that winners, ties and
verdicts are known in advance.
"""

from __future__ import annotations

import filecmp
import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from scipy import stats as st

from ganbench.cli import main
from ganbench.core import track
from ganbench.metrics import parse_metric_name
from ganbench.reporting.leaderboard import build_boards
from ganbench.reporting.publish import load_literature, publish
from ganbench.reporting.render import fmt, mean_std
from ganbench.reporting.stats import summarise

REPO = Path(__file__).resolve().parent.parent
FID, CURVE = "domain_fid_64_test", "domain_fid_32_test"  # the final evaluation's FID and the per-epoch curve's
CURVED = """
description = "tiny protocol with a per-epoch curve"
models = ["dcgan", "wgan-gp"]
seeds = [0, 1]

[data]
dataset = "fashion-mnist"
subset = 192

[train]
epochs = 2
batch_size = 32
check_every = 4

[eval]
num_samples = 64
metrics = ["fid@domain"]
curve = ["fid@domain"]
curve_samples = 32
grid_size = 4
batch_size = 64
"""
RING = """
description = "tiny ring without a curve"
models = ["gan-mlp2d"]
seeds = [0]

[data]
dataset = "ring8"
subset = 512
subset_seed = 0
image_size = 0
channels = 2

[train]
epochs = 1
batch_size = 256
check_every = 25

[eval]
num_samples = 200
metrics = ["modes2d"]
"""
SYNTH_FID = "fid_20_test"
# fashion-50ep's result names (20 of them with the domain metrics, tests and targets): the page must still fit
WIDE = ["fid_10k_test", "kid_10k_test", "precision_k3_10k_test", "recall_k3_10k_test", "density_k5_10k_test",
        "coverage_k5_10k_test", "domain_fid_10k_test", "domain_kid_10k_test", "domain_precision_k3_10k_test",
        "domain_recall_k3_10k_test", "domain_density_k5_10k_test", "domain_coverage_k5_10k_test", "domain_is_10k",
        "is_10k", "copies_l1_10k_train", "copying_ct_10k_train", "nn_l1_10k_train", "domain_copies_10k_train"]
# Set per-seed values: "good" is far better than "bad" on FID (a winner); on KID the two overlap (a tie).
# A trivial answer's score, the same for every model and seed (as l1_mean_target_* of an image-to-image task).
SYNTH = {"good": {SYNTH_FID: [10.0, 11.0, 12.0], "kid_20_test": [0.10, 0.30, 0.20], "l1_mean_target_20_test": [50.0] * 3},
         "bad": {SYNTH_FID: [20.0, 21.5, 22.0], "kid_20_test": [0.25, 0.15, 0.22], "l1_mean_target_20_test": [50.0] * 3}}


def log_run(tracker: track.Tracker, protocol: str, model: str, seed: int, metrics: dict[str, float]) -> str:
    """A finished tracked run with the given final metrics (each tagged with its provenance, as a run's evaluation does)."""
    run_id = tracker.start(f"ganbench/{protocol}", f"{model}-seed{seed}", {"device": "cpu", "device_name": "test-cpu"},
                           {track.TAG_PROTOCOL: protocol, track.TAG_PROTOCOL_HASH: f"{protocol}-{model}".ljust(64, "0"),
                            track.TAG_SHARED_HASH: protocol.ljust(64, "0"), track.TAG_MODEL: model,
                            track.TAG_SEED: str(seed), track.TAG_HEALTH: "none",
                            **{f"ganbench.metric.{k}": f"n=20 higher_is_better=False" for k in metrics}})
    tracker.log_metrics(run_id, {**metrics, "wall_time_s": 60.0, "images_seen": 100.0})
    tracker.end(run_id, "finished")
    time.sleep(0.01)
    return run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from ganbench.core.assets import cache_root
    from ganbench.pipeline.run import run_protocol

    root = tmp_path_factory.mktemp("publish-store")
    files = {"curved": root / "curved.toml", "ring": root / "ringp.toml"}
    files["curved"].write_text(CURVED)
    files["ring"].write_text(RING)
    cache = cache_root()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANBENCH_HOME", str(root / "home"))
        mp.setenv("GANBENCH_CACHE", str(cache))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        uri = f"sqlite:///{root / 'home' / 'mlflow.db'}"
        outs = [*run_protocol(str(files["curved"]), tracking_uri=uri, progress=False),
                *run_protocol(str(files["ring"]), tracking_uri=uri, progress=False)]
        tracker = track.Tracker(uri)
        for model, values in SYNTH.items():
            for seed in range(3):
                log_run(tracker, "synth", model, seed, {k: v[seed] for k, v in values.items()})
        for i, model in enumerate(("dcgan", "wgan-gp")):  # one seed a side: nothing testable, said once
            log_run(tracker, "wide", model, 0, {name: 1.0 + i + k / 10 for k, name in enumerate(WIDE)})
        log_run(tracker, "single", "dcgan", 0, {SYNTH_FID: 30.0})  # one seed a side: no test possible
        log_run(tracker, "single", "wgan-gp", 0, {SYNTH_FID: 25.0})
        for seed in (0, 1):  # e.g. a reverse KL with a mode never hit (MLflow stores inf as the largest float)
            log_run(tracker, "single", "lsgan", seed, {SYNTH_FID: float("inf")})
    assert all(o.status == "finished" for o in outs), [(o.model, o.message) for o in outs]
    return {"uri": uri, "files": files, "runs": {(o.model, o.seed): o.run_id for o in outs}, "root": root}


@pytest.fixture(scope="module")
def published(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("published") / "reports"
    out.mkdir()
    (out / "literature.toml").write_text(
        '[[figure]]\nprotocol = "curved"\nmodel = "dcgan"\npaper_model = "Paper GAN"\nmetric = "%s"\nvalue = 99.0\n'
        'plus_minus = 1.5\nsource = "A 2020, Table 9"\nsetup = "their set-up"\n\n'
        '[[figure]]\nprotocol = "grid25"\nmodel = "gan-mlp2d"\npaper_model = "GAN"\nmetric = "modes_hq_2500"\nvalue = 17.0\n'
        'source = "B 2018, Table 1"\nsetup = "theirs"\n' % FID)
    names = [str(store["files"]["curved"]), str(store["files"]["ring"]), "synth", "single", "wide", "grid25"]
    return publish(names, out, store["uri"])


def mlflow_values(store, model: str, name: str) -> list[float]:
    client = MlflowClient(store["uri"])
    return [client.get_run(store["runs"][(model, s)]).data.metrics[name] for s in (0, 1)]


def test_csv_and_json_hold_the_mlflow_numbers(store, published):
    out = published.out_root / "curved"
    csv = pd.read_csv(out / "leaderboard.csv")
    client = MlflowClient(store["uri"])
    for model in ("dcgan", "wgan-gp"):
        vals = mlflow_values(store, model, FID)
        (row,) = csv[(csv["model"] == model) & (csv["metric"] == FID)].itertuples()
        assert row.mean == pytest.approx(np.mean(vals)) and row.std == pytest.approx(np.std(vals, ddof=1))
        assert row.n_seeds == 2 and row.ci_low <= row.mean <= row.ci_high
        floors = [client.get_run(store["runs"][(model, s)]).data.metrics[FID + "_floor"] for s in (0, 1)]
        assert row.floor == pytest.approx(np.mean(floors))
    # The per-epoch curve metric is not a headline metric: only the final evaluation's FID is ranked.
    assert sorted(csv["metric"].unique()) == [FID]
    data = json.loads((out / "leaderboard.json").read_text())
    (board,) = data["boards"]
    runs = {r["run_id"]: r for r in board["runs"]}
    assert set(runs) == {store["runs"][(m, s)] for m in ("dcgan", "wgan-gp") for s in (0, 1)}
    for (model, seed), run_id in store["runs"].items():
        if model in ("dcgan", "wgan-gp"):
            run = client.get_run(run_id)
            r = runs[run_id]
            assert (r["model"], r["seed"], r["status"]) == (model, seed, "finished")
            assert r["identity"] == run.data.tags["ganbench.protocol_hash"]
            assert r["device"].startswith(run.data.params["device"])
            assert r["wall_time_s"] == pytest.approx(run.data.metrics["wall_time_s"])
            assert r["metrics"][FID] == pytest.approx(run.data.metrics[FID])
    readme = (out / "README.md").read_text()
    ident = client.get_run(store["runs"][("dcgan", 0)]).data.tags["ganbench.protocol_hash"]
    assert f"`{ident[:12]}`" in readme and "| device |" in readme.replace("device | identity", "device |")


def test_curve_figure_only_where_a_curve_was_logged(store, published):
    curved, ring = published.out_root / "curved" / "img", published.out_root / "ringp" / "img"
    assert (curved / f"curve_{CURVE}.png").is_file()
    assert not list(ring.glob("curve_*.png")) and list(ring.iterdir())  # the ring report has figures, no curve
    # The curve is the MLflow history at steps >= 1 (epochs): the final evaluation's step 0 is not on it.
    from ganbench.reporting.figures import curve_history
    tracker = track.Tracker(store["uri"])
    (board,) = build_boards(tracker.search(), "curved")
    hist = curve_history(board, tracker)
    client = MlflowClient(store["uri"])
    for (model, seed), run_id in store["runs"].items():
        if model == "gan-mlp2d":
            continue
        got = hist[(hist["run_id"] == run_id)]
        logged = {m.step: m.value for m in client.get_metric_history(run_id, CURVE)}
        assert sorted(got["step"]) == [1, 2] == sorted(logged)
        assert got.sort_values("step")["value"].tolist() == pytest.approx([logged[1], logged[2]])
    assert list(hist["metric"].unique()) == [CURVE]


def test_index_lists_protocols_skips_those_without_runs_and_names_winners(published):
    assert published.skipped == ["grid25"]
    index = published.index.read_text()
    assert "Not run yet (no tracked runs): grid25." in index
    for name in ("curved", "ringp", "synth", "single"):
        assert f"[{name}]({name}/README.md)" in index
    assert "tiny protocol with a per-epoch curve" in index and "fid@domain" in index
    assert "dcgan × 2, wgan-gp × 2" in index
    # synth: good's FID values are all below bad's -> good wins (Welch p below 0.05, computed here);
    # KID overlaps -> tie.
    g, b = SYNTH["good"], SYNTH["bad"]
    p_fid = st.ttest_ind(g[SYNTH_FID], b[SYNTH_FID], equal_var=False).pvalue
    p_kid = st.ttest_ind(g["kid_20_test"], b["kid_20_test"], equal_var=False).pvalue
    assert p_fid < 0.05 <= p_kid
    assert f"| synth | {SYNTH_FID} | good | ahead of bad (11 vs 21.17), Welch p = {p_fid:.2g} |" in index
    assert "| synth | kid_20_test | tie | good ahead of bad (0.2 vs 0.2067)" in index and f"Welch p = {p_kid:.2g}: not significant" in index
    # one seed a side: untested, not a tie (a tie is a test that found no difference)
    assert "| single | fid_20_test | untested | wgan-gp ahead of dcgan (25 vs 30) with 1 and 1 seeds" in index
    # a metric every model scores the same describes the task: no winner row
    assert "| synth | l1_mean_target_20_test |" not in index and "l1_mean_target_20_test" in (published.out_root / "synth" / "README.md").read_text()


def test_literature_rows_sit_beside_our_values(store, published):
    index = published.index.read_text()
    ours = summarise(mlflow_values(store, "dcgan", FID))
    assert f"| curved | Paper GAN | dcgan | {FID} | 99 ± 1.5 | {mean_std(ours)} (n = 2) | A 2020, Table 9 |" in index
    assert "| grid25 | GAN | gan-mlp2d | modes_hq_2500 | 17 | not run |" in index
    # The shipped figures parse and name metrics under the naming rule.
    shipped = load_literature(REPO / "reports" / "literature.toml")
    assert {(f.model, f.value, f.plus_minus) for f in shipped} >= {("dcgan", 26.5, 1.6), ("wgan-gp", 24.5, 2.1)}
    assert all(parse_metric_name(f.metric) is not None for f in shipped)


def test_stability_page_tests_with_welch_and_says_how_sure(store, published):
    page = published.stability.read_text()
    dc, wg = mlflow_values(store, "dcgan", FID), mlflow_values(store, "wgan-gp", FID)
    ref = st.ttest_ind(wg, dc, equal_var=False)
    assert f"| {FID} | {fmt(np.mean(wg) - np.mean(dc))} | {fmt(ref.statistic, 3)} |" in page
    assert f"| {fmt(ref.pvalue, 3)} |" in page
    assert f"p = {ref.pvalue:.2g} ({ref.pvalue:.2g} after Holm's correction over the page's metrics) with 2 vs 2 seeds" in page
    f = np.var(wg, ddof=1) / np.var(dc, ddof=1)  # stability as spread over seeds: the F test, claimed only if significant
    assert f"F(1, 1) = {f:.3g}, p = {2 * min(st.f.cdf(f, 1, 1), st.f.sf(f, 1, 1)):.2g}" in page
    # one seed a side: the page says no test is possible
    assert "With 1 seed(s) of dcgan and 1 of wgan-gp no test is possible: the comparison is anecdotal." in page
    assert {c.protocol for c in published.cases} == {"curved", "single", "wide"}  # synth has neither model, ringp one
    # every seed of both models on the curve figure, and the findings each run logged (as `ganbench diagnose` reads)
    assert (published.out_root / "stability" / f"curved_{CURVE}.png").is_file()
    from ganbench.api import diagnose
    (case,) = [c for c in published.cases if c.protocol == "curved"]
    assert sorted(case.curves["seed"].unique()) == [0, 1] and set(case.curves["model"]) == {"dcgan", "wgan-gp"}
    for (model, seed), run_id in store["runs"].items():
        if model in ("dcgan", "wgan-gp"):
            names = sorted(f.name for f in diagnose(run_id, tracking_uri=store["uri"]))
            line = case.findings[run_id]
            assert (line == "no findings") == (names == []) and all(n in line for n in names)
    html = (published.out_root / "stability.html").read_text()
    srcs = re.findall(r'<img src="([^"]+)"', html)
    assert "<script" not in html and "data:" not in html and srcs
    assert all((published.out_root / src).is_file() for src in srcs)  # each image once, beside the page


def test_files_are_small_and_republishing_changes_nothing(store, published, tmp_path):
    assert all(f.stat().st_size < 1_000_000 for f in published.files), max(f.stat().st_size for f in published.files)
    assert all(f.stat().st_size < 100_000 for f in published.files if f.suffix == ".png")
    again = tmp_path / "reports"
    again.mkdir()
    (again / "literature.toml").write_text((published.out_root / "literature.toml").read_text())
    second = publish([str(store["files"]["curved"]), str(store["files"]["ring"]), "synth", "single", "wide", "grid25"],
                     again, store["uri"])
    firsts = sorted(f.relative_to(published.out_root) for f in published.files)
    assert firsts == sorted(f.relative_to(again) for f in second.files)
    changed = [f for f in firsts if not filecmp.cmp(published.out_root / f, again / f, shallow=False)]
    assert changed == [], changed


def test_infinite_values_are_published_as_inf(published):
    """The mean of two runs at MLflow's largest float overflows to inf: JSON (which has no infinity) says "inf"."""
    data = json.loads((published.out_root / "single" / "leaderboard.json").read_text())
    (model,) = [m for m in data["boards"][0]["models"] if m["model"] == "lsgan"]
    assert model["metrics"][SYNTH_FID]["mean"] == "inf"
    csv = pd.read_csv(published.out_root / "single" / "leaderboard.csv")
    assert csv[csv["model"] == "lsgan"]["mean"].tolist() == [float("inf")]


def test_cli_publish_reports_skipped_protocols(store, tmp_path, capsys):
    assert main(["publish", "synth", "grid25", "--out", str(tmp_path / "r"), "--tracking-uri", store["uri"]]) == 0
    out = capsys.readouterr().out
    assert "skipped (no tracked runs): grid25" in out and (tmp_path / "r" / "synth" / "leaderboard.csv").is_file()
    assert main(["publish", "--out", str(tmp_path / "r2"), "--tracking-uri", f"sqlite:///{tmp_path / 'empty.db'}"]) == 0
    assert "fashion-smoke" in capsys.readouterr().out  # every catalogue protocol, each skipped


def test_no_protocols_is_refused(store, tmp_path):
    from ganbench.core.errors import GanbenchError
    with pytest.raises(GanbenchError, match="no protocols to publish"):
        publish([], tmp_path, store["uri"])


def test_a_wide_protocol_page_leads_with_the_headline_metrics_fits_1300_px_and_says_a_verdict_once(published):
    """fashion-50ep's twenty result names: the first table holds FID, KID, precision, recall and IS only; the other
    ranked metrics, the targets and tests, and the budget have tables of their own; an untestable comparison says
    so once; in headless Chromium at 1300 px nothing is wider than the page."""
    import os

    page_md = (published.out_root / "wide" / "README.md").read_text()
    first = page_md.split("| # | model |", 1)[1].split("\n", 1)[0]
    assert {c.split()[0] for c in first.split("|") if c.strip()} == {
        "fid_10k_test", "kid_10k_test", "is_10k", "precision_k3_10k_test", "recall_k3_10k_test", "seeds", "healthy"}
    assert "domain_fid_10k_test" not in first and "Other ranked metrics:" in page_md
    assert "Targets and tests (not ranked):" in page_md and "Budget and identity:" in page_md
    assert page_md.count("no test is possible") == 1
    chromium = "/usr/bin/chromium"
    if not os.path.exists(chromium):
        pytest.skip("Debian's chromium package is not installed (scripts/setup.sh installs it as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_context(java_script_enabled=True, viewport={"width": 1300, "height": 900}).new_page()
            page.goto((published.out_root / "wide" / "index.html").as_uri())
            widths = page.evaluate("() => [document.documentElement.scrollWidth, ...Array.from("
                                   "document.querySelectorAll('table')).map(t => t.getBoundingClientRect().right)]")
            artifacts = REPO / "test-artifacts"
            artifacts.mkdir(exist_ok=True)
            page.screenshot(path=str(artifacts / "wide-report.png"), full_page=True)
        finally:
            browser.close()
    assert max(widths) <= 1300, widths
