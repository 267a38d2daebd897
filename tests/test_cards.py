"""ganbench/cards.py: [results.<protocol>] written from real MLflow runs (SQLite store in tmp_path)."""

from __future__ import annotations

import math
import shutil
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

from ganbench.core import track
from ganbench.pipeline.cards import format_results, splice, update_cards
from ganbench.cli import main
from ganbench.core.errors import GanbenchError
from ganbench.spec.protocol import load_model

ZOO = Path(__file__).resolve().parent.parent / "zoo"
HASH_OLD, HASH_NEW = "a" * 64, "b" * 64
FID = {0: 410.0, 1: 398.5, 2: 412.25}  # per seed, under HASH_NEW
DOMAIN = {0: 120.0, 1: 130.0, 2: 131.0}


def log_run(tracker: track.Tracker, model: str, seed: int, phash: str, metrics: dict[str, float],
            status: str = "finished", protocol: str = "smoke") -> str:
    run_id = tracker.start(f"ganbench/{protocol}", f"{model}-seed{seed}", {"device": "cpu", "device_name": "x86_64"},
                           {track.TAG_PROTOCOL: protocol, track.TAG_PROTOCOL_HASH: phash, track.TAG_MODEL: model,
                            track.TAG_SEED: str(seed)})
    tracker.log_metrics(run_id, metrics)
    tracker.set_tags(run_id, {"ganbench.metric.domain_fid_256_test": "extractor=domain n=256 higher_is_better=False"})
    tracker.end(run_id, status)
    time.sleep(0.01)  # distinct start times: the newest hash is the one with the latest run
    return run_id


@pytest.fixture
def store(tmp_path) -> str:
    uri = f"sqlite:///{tmp_path / 'cards.db'}"
    tracker = track.Tracker(uri)
    log_run(tracker, "dcgan", 0, HASH_OLD, {"fid_256_test": 999.0})  # an older hash: ignored
    for seed in FID:
        log_run(tracker, "dcgan", seed, HASH_NEW, {
            "fid_256_test": FID[seed], "fid_256_test_floor": 5.0, "domain_fid_256_test": DOMAIN[seed],
            "final_d_loss": 0.5 + seed, "final_g_loss": 2.0 - seed, "wall_time_s": 60.0 + seed,
            "images_seen": 2048.0, "epochs_done": 1.0, "eval_time_s": 3.0, "last_step_d_loss": 0.1,
            "d_loss": 0.3, "images_per_s": 100.0})
    log_run(tracker, "dcgan", 3, HASH_NEW, {"fid_256_test": 1e6}, status="diverged")  # not finished: ignored
    log_run(tracker, "wgan-gp", 0, HASH_NEW, {"fid_256_test": 300.0})  # another model
    return uri


@pytest.fixture
def zoo(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "zoo"
    folder.mkdir()
    shutil.copy(ZOO / "dcgan.toml", folder / "dcgan.toml")
    monkeypatch.setenv("GANBENCH_ZOO_PATH", str(folder))
    return folder


def test_card_gets_mean_and_std_over_seeds_of_the_newest_hash(store, zoo):
    before = (zoo / "dcgan.toml").read_text()
    (u,) = update_cards(["dcgan"], "smoke", store, zoo)
    text = (zoo / "dcgan.toml").read_text()
    assert text.startswith(before)  # everything else byte-for-byte: the sub-table is appended
    t = tomllib.loads(text)["results"]["smoke"]
    assert t == u.table
    assert t["protocol_hash"] == HASH_NEW[:12] and t["seeds"] == [0, 1, 2] and t["n_runs"] == 3
    assert t["device"] == "cpu (x86_64)" and t["date"] == time.strftime("%Y-%m-%d", time.gmtime())
    for name, per_seed in {"fid_256_test": FID, "domain_fid_256_test": DOMAIN,
                           "final_d_loss": {s: 0.5 + s for s in FID}, "wall_time_s": {s: 60.0 + s for s in FID}}.items():
        x = np.array(list(per_seed.values()))
        assert t[name] == pytest.approx([x.mean(), x.std(ddof=1)], rel=1e-5)  # the leaderboard's sample std
    assert not set(t) & {"fid_256_test_floor", "images_seen", "epochs_done", "eval_time_s", "last_step_d_loss",
                         "d_loss", "images_per_s"}
    card = load_model("dcgan")  # the card still validates and carries the table beside the ones it had
    assert card.results["smoke"] == t and set(card.results) == {"smoke"} | set(tomllib.loads(before)["results"])


def test_second_update_replaces_the_table_and_keeps_other_protocols(store, zoo, tmp_path):
    card = zoo / "dcgan.toml"
    card.write_text(card.read_text() + "\n[results.other]\n# kept\nfid_10k_test = [30.0, 1.0]\n")
    update_cards(["dcgan"], "smoke", store, zoo)
    first = card.read_text()
    log_run(track.Tracker(store), "dcgan", 4, HASH_NEW, {"fid_256_test": 400.0})
    update_cards(["dcgan"], "smoke", store, zoo)
    text = card.read_text()
    assert text.count("[results.smoke]") == 1 and "[results.other]\n# kept\nfid_10k_test = [30.0, 1.0]\n" in text
    assert text.split("[results.smoke]")[0] == first.split("[results.smoke]")[0]
    t = tomllib.loads(text)["results"]
    assert t["smoke"]["seeds"] == [0, 1, 2, 4] and t["other"] == {"fid_10k_test": [30.0, 1.0]}
    assert t["smoke"]["fid_256_test"][0] == pytest.approx(np.mean([*FID.values(), 400.0]), rel=1e-5)  # 6 digits
    update_cards(["dcgan"], "smoke", store, zoo)
    assert card.read_text() == text  # idempotent


def test_splice_replaces_only_its_table_and_leaves_the_next_tables_comments():
    text = '[results]\n\n[results.a]\nx = 1\n\n# about b\n[results.b]\ny = 2\n'
    assert splice(text, "a", "[results.a]\nx = 3\n") == '[results]\n\n[results.a]\nx = 3\n\n# about b\n[results.b]\ny = 2\n'
    assert splice(text, "c", "[results.c]\n") == text + "\n[results.c]\n"


def test_single_seed_std_is_nan_and_formats_readably(zoo, tmp_path):
    uri = f"sqlite:///{tmp_path / 'one.db'}"
    log_run(track.Tracker(uri), "dcgan", 7, HASH_NEW, {"fid_256_test": 406.8, "final_d_loss": 0.25})
    (u,) = update_cards(["dcgan"], "smoke", uri, zoo)
    t = tomllib.loads((zoo / "dcgan.toml").read_text())["results"]["smoke"]
    assert t["fid_256_test"][0] == 406.8 and math.isnan(t["fid_256_test"][1])
    (line,) = format_results({"smoke": t})
    assert line.startswith(f"smoke (hash {HASH_NEW[:12]}, 1 seed, cpu (x86_64), ") and "fid_256_test 406.8," in line


def test_no_finished_runs_is_refused_and_the_card_untouched(store, zoo, capsys):
    before = (zoo / "dcgan.toml").read_text()
    with pytest.raises(GanbenchError, match="no finished runs of protocol 'nope'"):
        update_cards(["dcgan"], "nope", store, zoo)
    assert main(["card", "dcgan", "--protocol", "smoke", "--tracking-uri", store, "--zoo-dir", str(zoo / "missing")]) == 2
    assert (zoo / "dcgan.toml").read_text() == before


def test_cli_card_and_list_print_one_line_per_protocol(store, zoo, capsys):
    assert main(["list", "--models"]) == 0
    assert "results: (not measured yet)" in capsys.readouterr().out
    assert main(["card", "dcgan", "--protocol", "smoke", "--tracking-uri", store, "--zoo-dir", str(zoo)]) == 0
    assert "[results.smoke]: smoke (hash bbbbbbbbbbbb, 3 seeds" in capsys.readouterr().out
    assert main(["list", "--models"]) == 0
    out = capsys.readouterr().out
    assert "smoke (hash bbbbbbbbbbbb, 3 seeds, cpu (x86_64), " in out and "fid_256_test 406.9 ± 7.4" in out
