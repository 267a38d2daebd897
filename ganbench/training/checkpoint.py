"""A run's artifacts during training: the atomic checkpoint written after every epoch (weights,
optimiser states, the run's generator state, the loop's counters and per-step rows), from which a run
resumes exactly, and the per-step records as a parquet file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from torch import nn

from ganbench.core.assets import atomic_path, atomic_torch_save, ganbench_home
from ganbench.core.errors import GanbenchError
from ganbench.spec.protocol import RunSpec


CHECKPOINT_DIR = "checkpoints"  # in the run folder and among the MLflow run's artifacts
LAST_CHECKPOINT = f"{CHECKPOINT_DIR}/last.pt"  # written after every epoch: what a run resumes from
FINAL_WEIGHTS = "final.pt"  # a finished run's networks (G, D, G_ema), in the run folder; logged under CHECKPOINT_DIR


def run_dir_for(spec: RunSpec) -> Path:
    """A run's folder: ``<ganbench home>/runs/<protocol>/<identity[:12]>/<model>/seed<k>`` (checkpoints, grids,
    records)."""
    return ganbench_home() / "runs" / spec.protocol.name / spec.protocol_hash[:12] / spec.model.name / f"seed{spec.seed}"


def checkpoint_path(run_dir: Path) -> Path:
    return run_dir / LAST_CHECKPOINT


def write_records(rows: list[dict], path: Path) -> None:
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_parquet(tmp, index=False)


def _run_key(spec: RunSpec) -> list:
    return [spec.protocol_hash, spec.model.name, spec.seed]


def save_checkpoint(path: Path, spec: RunSpec, nets: dict[str, dict], optimizers: dict[str, dict],
                    gen: torch.Generator, state: dict) -> None:
    """``nets``: G, D (and G_ema, and the loss's ``loss_state``) state dicts; ``optimizers``: opt_g, opt_d; ``state``: the loop's counters and rows."""
    atomic_torch_save({
        "run_key": _run_key(spec), **nets, **optimizers,
        "gen_state": gen.get_state(), "torch_rng": torch.get_rng_state(),
        "epoch": state["epoch"], "step": state["step"], "images_seen": state["images_seen"],
        "wall_time_s": state["wall_time_s"], "cpu_time_s": state["cpu_time_s"],
        "rows": pd.DataFrame(state["rows"]).to_dict(orient="list"),
    }, path)


def load_checkpoint(path: Path, spec: RunSpec, G: nn.Module, D: nn.Module, gen: torch.Generator,
                    G_ema: nn.Module | None = None, loss=None) -> tuple[dict, dict, dict]:
    """Load a run's checkpoint into its networks and generator; returns its loop state and optimiser states."""
    ck = torch.load(path, map_location="cpu", weights_only=True)
    if list(ck["run_key"]) != _run_key(spec):
        raise GanbenchError(f"{path} belongs to another run (protocol hash, model, seed = {ck['run_key']}); "
                            "it cannot be resumed under this protocol")
    G.load_state_dict(ck["G"])
    D.load_state_dict(ck["D"])
    if G_ema is not None:
        G_ema.load_state_dict(ck["G_ema"])
    if loss is not None and "loss_state" in ck:
        loss.load_state_dict(ck["loss_state"])
    gen.set_state(ck["gen_state"])
    torch.set_rng_state(ck["torch_rng"])
    rows = pd.DataFrame(ck["rows"]).to_dict(orient="records")
    state = dict(epoch=ck["epoch"], step=ck["step"], images_seen=ck["images_seen"], wall_time_s=ck["wall_time_s"],
                 cpu_time_s=ck.get("cpu_time_s", float("nan")), rows=rows)
    return state, ck["opt_g"], ck["opt_d"]
