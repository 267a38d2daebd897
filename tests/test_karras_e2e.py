"""ProGAN-lite and StyleGAN-lite through ``ganbench run`` (ganbench/run.py): per-epoch resolution and
fade-in alpha of a growing run, and the domain path length among the final metrics. Tiny: 64 images."""

from __future__ import annotations

import math

TINY32 = """
description = "32x32 Karras models end to end, tiny"
models = ["progan-lite", "stylegan-lite"]
seeds = [0]

[data]
dataset = "fashion-mnist"
subset = 64
image_size = 32

[train]
epochs = 2
batch_size = 16
check_every = 2

[eval]
num_samples = 100
metrics = ["fid", "ppl"]
extractor = "domain"
floor = false
grid_size = 4
batch_size = 50
"""


def test_growing_and_style_models_run_end_to_end(tmp_path):
    from mlflow.tracking import MlflowClient

    from ganbench.run import run_protocol
    from ganbench.track import tracking_uri

    path = tmp_path / "tiny32.toml"
    path.write_text(TINY32)
    grow = {"generator.options.phase_images": 32, "discriminator.options.phase_images": 32}
    (pro,) = run_protocol(str(path), models=["progan-lite"], progress=False, overrides=grow)
    (sty,) = run_protocol(str(path), models=["stylegan-lite"], progress=False)
    client = MlflowClient(tracking_uri())
    assert pro.status == sty.status == "finished", (pro.message, sty.message)
    # the grids of epochs 1 and 2 were drawn at 8x8 and 16x16, half faded in (last D steps at 48 and 112 images)
    history = {m: [x.value for x in client.get_metric_history(pro.run_id, m)] for m in ("resolution", "fade_alpha")}
    assert history == {"resolution": [8.0, 16.0], "fade_alpha": [0.5, 0.5]}
    assert (pro.run_dir / "grids" / "epoch_002.png").is_file()
    pro_metrics, sty_metrics = client.get_run(pro.run_id).data.metrics, client.get_run(sty.run_id).data.metrics
    assert math.isfinite(pro_metrics["domain_ppl100_z"]) and math.isfinite(sty_metrics["domain_ppl100_w"])
    assert math.isfinite(sty_metrics["domain_fid100_test"]) and "resolution" not in sty_metrics
