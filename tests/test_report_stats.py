"""Statistics of reports and gates against closed forms, brute force and scipy as independent references."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats as st

import pandas as pd

from ganbench.reporting.leaderboard import MetricDelta, headline_metrics, is_healthy, metric_direction, model_row, verdict
from ganbench.reporting.stats import (bootstrap_ci, hedges_g, holm, regression_bound, spread_test, summarise,
                                     t_interval, welch_test)


def test_bootstrap_ci_of_two_values_is_their_range():
    # Resampled means of {a, b} are a, (a+b)/2, b with probability 1/4, 1/2, 1/4: the 2.5% and 97.5% points are a and b.
    assert bootstrap_ci([3.0, 7.0]) == (3.0, 7.0)
    assert all(math.isnan(v) for v in bootstrap_ci([3.0]))


@pytest.mark.parametrize("x", [[3.0, 1.0, 4.0, 1.0, 5.0], [10.5, 12.25, 9.0, 30.0, 11.0, 10.0]])
def test_exact_bootstrap_matches_brute_force_enumeration(x):
    n = len(x)
    means = np.array([np.mean([x[i] for i in idx]) for idx in itertools.product(range(n), repeat=n)])
    expected = np.quantile(means, [0.025, 0.975], method="inverted_cdf")
    assert bootstrap_ci(x) == pytest.approx(tuple(expected), abs=1e-12)


def test_monte_carlo_bootstrap_agrees_with_scipy():
    x = np.random.default_rng(1).normal(50.0, 4.0, size=12)  # above the exact-enumeration limit
    ours = bootstrap_ci(x)
    ref = st.bootstrap((x,), np.mean, confidence_level=0.95, method="percentile", n_resamples=20000,
                       random_state=np.random.default_rng(2)).confidence_interval
    assert ours[0] == pytest.approx(ref.low, abs=0.15) and ours[1] == pytest.approx(ref.high, abs=0.15)
    assert ours[0] < x.mean() < ours[1]


def test_small_samples_get_the_t_interval_whose_coverage_the_bootstrap_misses():
    """At 3 seeds the percentile bootstrap of the mean covers a normal mean about 75% of the time for a nominal
    95% (measured here over 4000 draws); Student's t-interval covers it 95%. Summaries below 20 values carry the
    t-interval (scipy's, as the independent reference), from 20 on the bootstrap."""
    rng = np.random.default_rng(0)
    draws = rng.normal(10.0, 2.0, size=(4000, 3))
    boot = np.mean([lo <= 10.0 <= hi for lo, hi in map(bootstrap_ci, draws)])
    student = np.mean([lo <= 10.0 <= hi for lo, hi in map(t_interval, draws)])
    assert 0.70 < boot < 0.80 and 0.94 < student < 0.96
    x = [13.6, 15.1, 12.2]
    s = summarise(x)
    ref = st.t.interval(0.95, 2, loc=np.mean(x), scale=st.sem(x))
    assert (s.ci_low, s.ci_high) == pytest.approx(ref, rel=1e-12) and s.interval == "t"
    many = rng.normal(size=25).tolist()
    assert summarise(many).interval == "bootstrap" and (summarise(many).ci_low, summarise(many).ci_high) == \
        pytest.approx(bootstrap_ci(many), rel=1e-12)


def test_holm_adjustment_against_hand_computation_and_the_grid25_case():
    # Holm (1979): sorted p times (m - rank), running maximum, capped at 1; untested metrics are not counted
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.2, math.nan, 0.9]) == pytest.approx([0.4, math.nan, 0.9], nan_ok=True)
    # the published grid25 comparison: p = 0.036 and 0.049 over 3 metrics do not survive the correction
    assert all(p >= 0.05 for p in holm([0.036, 0.049, 0.41]))


def test_hedges_g_and_the_spread_test_against_closed_forms():
    a, b = [1.0, 2.0, 3.0], [4.0, 5.0, 7.0]
    pooled = math.sqrt((2 * np.var(a, ddof=1) + 2 * np.var(b, ddof=1)) / 4)
    assert hedges_g(a, b) == pytest.approx((np.mean(b) - np.mean(a)) / pooled * (1 - 3 / (4 * 6 - 9)))
    t = spread_test(a, b)
    f = np.var(b, ddof=1) / np.var(a, ddof=1)
    assert t.f == pytest.approx(f) and t.df == (2, 2)
    assert t.p_value == pytest.approx(2 * min(st.f.cdf(f, 2, 2), st.f.sf(f, 2, 2)))
    # a spread 1.7x smaller at 3 seeds a side is far from significant (the claim the stability page made)
    assert spread_test([0.0, 1.0, 2.0], [0.0, 1.7, 3.4]).p_value > 0.4


def test_a_verdict_is_worded_by_the_holm_corrected_result():
    """One metric at raw p < 0.05 among three is not a win once corrected: no 'better model' is named."""
    from ganbench.reporting.leaderboard import Board, compare

    a = _row("dcgan", [10.0, 11.0, 12.0])
    b = _row("wgan-gp", [13.0, 13.5, 14.0])
    for row in (a, b):  # two more metrics where the two overlap completely
        for extra in ("kid_10k_test", "domain_fid_10k_test"):
            row.values[extra] = [1.0, 2.0, 3.0]
            row.metrics[extra] = summarise([1.0, 2.0, 3.0])
    board = Board("p", "h", [("fid_10k_test", False), ("kid_10k_test", False), ("domain_fid_10k_test", False)],
                  [a, b], pd.DataFrame())
    c = compare(board, "dcgan", "wgan-gp")
    fid = c.deltas[0]
    assert fid.test.p_value < 0.05 <= fid.p_holm and fid.better is None
    assert "Overall, no significant difference" in c.verdict and "after Holm's correction over 3 metrics" in c.verdict


def test_summary_mean_std_and_missing_values():
    s = summarise([1.0, 2.0, float("nan"), 3.0, 4.0])
    assert (s.n, s.mean) == (4, 2.5) and s.std == pytest.approx(math.sqrt(5 / 3))
    assert summarise([]).n == 0 and math.isnan(summarise([2.0]).std)


def test_welch_test_matches_the_textbook_formula():
    a, b = [150.0, 162.0, 171.0], [120.0, 124.0, 131.0, 119.0]
    r = welch_test(a, b)
    va, vb = np.var(a, ddof=1) / 3, np.var(b, ddof=1) / 4
    t = (np.mean(b) - np.mean(a)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 3)  # Welch-Satterthwaite
    assert r.delta == pytest.approx(np.mean(b) - np.mean(a))
    assert r.t == pytest.approx(t) and r.df == pytest.approx(df)
    assert r.p_value == pytest.approx(2 * st.t.sf(abs(t), df))
    assert r.p_value < 0.05
    assert math.isnan(welch_test([1.0], [2.0, 3.0]).p_value)  # one seed: no test


def test_regression_bound_closed_form_and_direction():
    t = st.t.ppf(0.99, 2)
    assert regression_bound([10.0, 11.0, 12.0], False, 1, 0.99) == pytest.approx(11 + t * math.sqrt(1 / 3 + 1))
    assert regression_bound([10.0, 11.0, 12.0], True, 2, 0.99) == pytest.approx(11 - t * math.sqrt(1 / 3 + 1 / 2))


def test_regression_gate_false_alarm_rate_is_one_minus_confidence():
    # Baselines of 3 seeds and reruns of 1 seed drawn from the same normal distribution: the gate
    # must fire on about 1% of reruns at confidence 0.99 and 10% at 0.9 (tolerance: 3.5 binomial
    # standard errors of 5000 draws).
    rng = np.random.default_rng(0)
    base = rng.normal(100.0, 5.0, size=(5000, 3))
    new = rng.normal(100.0, 5.0, size=5000)
    for conf in (0.99, 0.9):
        bounds = np.array([regression_bound(b, False, 1, conf) for b in base])
        se = math.sqrt(conf * (1 - conf) / len(new))
        assert np.mean(new > bounds) == pytest.approx(1 - conf, abs=3.5 * se)


def test_metric_direction_from_provenance_tag_then_registry():
    tag = {"ganbench.metric.prc10k_train": "extractor=x n=10 higher_is_better=True"}
    assert metric_direction("prc10k_train", tag) is True
    assert metric_direction("fid_10k_test", {}) is False  # registry: fid is lower-is-better
    assert metric_direction("images_seen", {}) is None and metric_direction("wall_time_s", {}) is None


def test_headline_metrics_skip_companions_and_compute_and_put_fid_first():
    runs = pd.DataFrame([{"metrics.kid_20_test": 0.1, "metrics.fid_20_test": 300.0, "metrics.fid_20_test_floor": 80.0,
                          "metrics.kid_20_test_std": 0.01, "metrics.wall_time_s": 9.0, "metrics.images_seen": 10.0,
                          "tags.ganbench.metric.kid_20_test": "n=20 higher_is_better=False"}])
    assert headline_metrics(runs) == [("fid_20_test", False), ("kid_20_test", False)]


def test_health_needs_a_finished_run_without_failure_findings():
    assert is_healthy(pd.Series({"status": "finished", "tags.ganbench.health": "warning"}))
    assert not is_healthy(pd.Series({"status": "finished", "tags.ganbench.health": "failure"}))
    assert not is_healthy(pd.Series({"status": "diverged"}))


def _row(model: str, fids: list[float]):
    runs = pd.DataFrame({"seed": range(len(fids)), "status": "finished", "metrics.fid_10k_test": fids,
                         "metrics.wall_time_s": 100.0, "metrics.images_seen": 1e6, "protocol_hash": "h",
                         "run_id": [f"{model}-{i}" for i in range(len(fids))], "tags.ganbench.health": "none"})
    return model_row(model, runs, [("fid_10k_test", False)])


def _verdict(a, b) -> str:
    test = welch_test(a.values["fid_10k_test"], b.values["fid_10k_test"])
    d = MetricDelta("fid_10k_test", False, a.metrics["fid_10k_test"], b.metrics["fid_10k_test"], test,
                    test.p_value)  # one metric: Holm leaves its p as it is
    return verdict("p", a, b, [d])


def test_the_verdict_says_not_established_when_no_metric_could_be_tested():
    # one seed a side: no test, so not 'no significant difference' (which would read as a tested null result)
    one = _verdict(_row("dcgan", [13.6]), _row("wgan-gp", [33.8]))
    assert "Overall, not established" in one and "no significant difference" not in one
    # three seeds a side within each other's spread: a test ran and found no difference
    three = _verdict(_row("dcgan", [13.0, 20.0, 16.0]), _row("wgan-gp", [15.0, 19.0, 14.0]))
    assert "Overall, no significant difference" in three
    # clearly apart: the better model is named
    apart = _verdict(_row("dcgan", [13.0, 13.5, 14.0]), _row("wgan-gp", [33.0, 34.0, 35.0]))
    assert "Overall, dcgan is the better model" in apart


def test_a_findings_line_groups_a_recurring_kind_with_its_count_and_span():
    from ganbench.diagnosis.findings import Finding
    from ganbench.reporting.stability import findings_line
    fs = [Finding("oscillation", "warning", a, a + 19, "") for a in (300, 100, 5000)]
    fs += [Finding("d-dominance", "warning", 7, 51, ""), Finding("healthy-equilibrium", "info", 900, 4000, "")]
    assert findings_line(fs) == ("warning d-dominance (steps 7-51); warning oscillation x3 (steps 100-5019, "
                                 "60 steps in all); info healthy-equilibrium (steps 900-4000)")
    assert findings_line([]) == "no findings"


def test_test_outcomes_read_targets_thresholds_and_floors():
    from ganbench.reporting.leaderboard import test_outcome
    from ganbench.reporting.stats import excess_over_floor

    assert excess_over_floor(0.08, 256, 0.01) == pytest.approx(st.binom.sf(20 - 1, 256, 0.01))  # 20 of 256 copies
    assert excess_over_floor(0.0, 256, 0.01) == 1.0 and excess_over_floor(0.004, 256, 0.0) == 0.0
    assert test_outcome("copying_ct_256_train", [-5.0, 2.0, 8.0], None) == "below -3 in 1/3 seeds"
    assert test_outcome("density_k5_256_test", [1.2, 0.9], None) == "|mean − 1| = 0.05"
    assert test_outcome("copies_l1_256_train", [0.08, 0.0039], 0.01) == "above the floor in 1/2 seeds (binomial p < 0.01)"
    assert test_outcome("nn_l1_256_train", [30.0], None) == ""  # descriptive: no better direction, no test


def _curves(model: str, per_seed: dict[int, list[float]], metric: str = "domain_fid_2000_test"):
    import pandas as pd

    return pd.DataFrame([{"model": model, "seed": s, "run_id": f"{model}{s}", "metric": metric, "step": i + 1,
                          "value": v} for s, values in per_seed.items() for i, v in enumerate(values)])


def test_a_curve_still_falling_at_the_end_is_called_still_improving_and_a_flat_one_is_not():
    from ganbench.reporting.stability import still_improving

    falling = [100 - 4 * i for i in range(12)]  # 56 at the end, falling 4 per epoch
    flat = [100 - 4 * i for i in range(8)] + [72, 72.3, 71.8, 72.1]
    assert still_improving(_curves("wgan-gp", {0: falling, 1: falling}), "wgan-gp", "domain_fid_2000_test") is True
    assert still_improving(_curves("dcgan", {0: flat, 1: flat}), "dcgan", "domain_fid_2000_test") is False
    assert still_improving(_curves("dcgan", {0: falling, 1: flat}), "dcgan", "domain_fid_2000_test") is False  # every seed
    assert still_improving(_curves("dcgan", {0: falling[:4]}), "dcgan", "domain_fid_2000_test") is None  # too short
    higher = [0.1 + 0.05 * i for i in range(12)]  # a higher-is-better curve still rising
    assert still_improving(_curves("dcgan", {0: higher}, "recall_k3_2000_test"), "dcgan", "recall_k3_2000_test") is True


def test_the_stability_verdict_states_each_models_steps_and_an_unconverged_curve():
    from types import SimpleNamespace

    from ganbench.reporting.stability import budget_note

    def row(model):  # fashion-50ep: 60k images x 50 epochs at batch 128; WGAN-GP's 5 D steps per G step
        return SimpleNamespace(model=model, compute={"images_seen": SimpleNamespace(mean=469 * 128 * 50.0)})

    pair = SimpleNamespace(a=row("dcgan"), b=row("wgan-gp"))
    falling, flat = [100 - 4 * i for i in range(12)], [60.0] * 12
    import pandas as pd

    curves = pd.concat([_curves("wgan-gp", {0: falling, 1: falling}), _curves("dcgan", {0: flat, 1: flat})])
    note = budget_note("fashion-50ep", pair, curves)
    assert note.startswith("Budget: dcgan 23,450 G steps and 23,450 D steps vs wgan-gp 4,690 G steps and 23,450 D "
                           "steps, the same images seen.")
    assert "wgan-gp's domain_fid_2000_test curve was still improving" in note and "dcgan's" not in note.split("seen.")[1]


def test_training_cost_is_compared_in_cpu_time_and_a_shared_machine_is_named():
    from types import SimpleNamespace as NS

    from ganbench.reporting.leaderboard import _cost_sentence

    def row(model, wall, cpu, share):
        return NS(model=model, compute={"wall_time_s": NS(mean=wall), "cpu_time_s": NS(mean=cpu),
                                        "cpu_share": NS(mean=share)})

    # DCGAN trained while other work used the cores (8914 s wall, 3100 s CPU), WGAN-GP alone
    text = _cost_sentence(row("dcgan", 8914.0, 3100.0, 0.35), row("wgan-gp", 4600.0, 8500.0, 0.92))
    assert text.startswith("wgan-gp took 2.7x the CPU time of dcgan per run (8500 s vs 3100 s).")
    assert "Runs of dcgan had under 80% of their cores (a shared machine): their wall times are not cost figures." in text
    assert "wall time of" not in text
    nan = float("nan")
    old = _cost_sentence(row("dcgan", 100.0, nan, nan), row("wgan-gp", 200.0, nan, nan))  # runs without CPU time
    assert old == ("wgan-gp took 2x the wall time of dcgan per run (200 s vs 100 s). (These runs recorded no CPU time: "
                   "whether they shared their machine is not known.)")


def test_a_translation_worse_than_the_mean_target_answer_is_said_to_be_beside_it():
    from types import SimpleNamespace as NS

    from ganbench.reporting.leaderboard import metric_kind
    from ganbench.reporting.render import _against_trivial

    trivial = "l1_mean_target_500_test"
    kind = metric_kind(trivial)
    assert not kind.ranked and kind.descriptive and kind.answer_to == "l1"  # never ranked, never gated
    cyclegan = NS(metrics={trivial: NS(n=1, mean=50.8), "l1_500_test": NS(n=1, mean=84.4)})
    assert _against_trivial(trivial, cyclegan) == "the model's l1_500_test (84.4) is WORSE than this answer"
    good = NS(metrics={"psnr_mean_target_500_test": NS(n=1, mean=10.5), "psnr_500_test": NS(n=1, mean=14.0)})
    assert _against_trivial("psnr_mean_target_500_test", good) == "the model's psnr_500_test (14) is better than this answer"
    assert _against_trivial("copies_l1_256_train", cyclegan) == ""
