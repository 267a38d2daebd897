"""ProGAN-lite and StyleGAN-lite through ``ganbench run`` (ganbench/run.py): per-epoch resolution and
fade-in alpha of a growing run, its per-phase grids and numbers, and the domain path length among the
final metrics. Tiny: 64 images."""

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

    from ganbench.pipeline.run import run_protocol
    from ganbench.core.track import tracking_uri

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
    # and the end of each phase (32 images each; 16 per step): a grid and the phase's numbers at MLflow step k
    grids = {f.path for f in client.list_artifacts(pro.run_id, "grids")}
    assert {f"grids/phase_{name}.png" for name in ("00_4px_stable", "01_8px_fade", "02_8px_stable", "03_16px_fade")} <= grids
    phases = {m: [(x.step, x.value) for x in sorted(client.get_metric_history(pro.run_id, m), key=lambda x: x.step)]
              for m in ("phase_resolution", "phase_fade_alpha", "phase_images_seen")}
    assert phases == {"phase_resolution": [(0, 4.0), (1, 8.0), (2, 8.0), (3, 16.0)],
                      "phase_fade_alpha": [(0, 1.0), (1, 0.5), (2, 1.0), (3, 0.5)],
                      "phase_images_seen": [(0, 32.0), (1, 64.0), (2, 96.0), (3, 128.0)]}
    assert all(math.isfinite(x.value) for x in client.get_metric_history(pro.run_id, "phase_d_loss"))
    pro_metrics, sty_metrics = client.get_run(pro.run_id).data.metrics, client.get_run(sty.run_id).data.metrics
    assert math.isfinite(pro_metrics["domain_ppl_z_100"]) and math.isfinite(sty_metrics["domain_ppl_w_100"])
    assert math.isfinite(sty_metrics["domain_fid_100_test"]) and "resolution" not in sty_metrics
