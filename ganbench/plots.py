"""Pictures of a run: sample grids and loss curves (PNG, written atomically)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from ganbench.assets import atomic_path


def save_grid(images: torch.Tensor, path: Path, nrow: int = 8) -> Path:
    """Save uint8 N x C x H x W images as one PNG grid (2 px padding)."""
    from torchvision.utils import make_grid, save_image

    grid = make_grid(images.float().div(255.0), nrow=nrow, padding=2, pad_value=1.0)
    with atomic_path(path) as tmp:
        save_image(grid, tmp, format="png")
    return path


def loss_plot(records: pd.DataFrame, path: Path, title: str = "") -> Path:
    """D and G loss per step (light) with a moving average (dark), and D(x) / D(G(z)) below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    window = max(1, len(records) // 50)
    for col, color in (("d_loss", "tab:blue"), ("g_loss", "tab:orange")):
        if col in records:
            ax1.plot(records["step"], records[col], color=color, alpha=0.25, linewidth=0.8)
            ax1.plot(records["step"], records[col].rolling(window, min_periods=1).mean(), color=color, label=col)
    ax1.set_ylabel("loss")
    ax1.legend(loc="upper right")
    for col, color in (("d_real", "tab:green"), ("d_fake", "tab:red")):
        if col in records:
            ax2.plot(records["step"], records[col].rolling(window, min_periods=1).mean(), color=color,
                     label={"d_real": "D(x)", "d_fake": "D(G(z))"}[col])
    ax2.set_xlabel("generator step")
    ax2.legend(loc="upper right")
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path
