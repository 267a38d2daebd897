"""Pictures of a run: sample grids and loss curves (PNG, written atomically).

Figures are built on matplotlib's object API (``Figure``), never pyplot: no global figure state, and
importing ganbench leaves the caller's matplotlib backend (a notebook's inline one) alone."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from matplotlib.figure import Figure
from matplotlib.patches import Circle
from torchvision.utils import make_grid, save_image

from ganbench.core.assets import atomic_path


def save_grid(images: torch.Tensor, path: Path, nrow: int = 8) -> Path:
    """Save uint8 N x C x H x W images as one PNG grid (2 px padding)."""
    grid = make_grid(images.float().div(255.0), nrow=nrow, padding=2, pad_value=1.0)
    with atomic_path(path) as tmp:
        save_image(grid, tmp, format="png")
    return path


def loss_plot(records: pd.DataFrame, path: Path, title: str = "") -> Path:
    """D and G loss per step (light) with a moving average (dark), and D(x) / D(G(z)) below."""
    fig = Figure(figsize=(8, 6))
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
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
    return save_figure(fig, path)


def scatter_2d(points: torch.Tensor, mixture, path: Path, title: str = "") -> Path:
    """Generated 2D samples (blue) over the mixture's modes (red crosses) with their 3-sigma circles."""
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    pts = points.numpy()
    ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.4, color="tab:blue", label="samples")
    c = mixture.centers.numpy()
    ax.scatter(c[:, 0], c[:, 1], marker="x", color="tab:red", s=30, label="modes")
    for x, y in c:
        ax.add_patch(Circle((x, y), 3 * mixture.sigma, fill=False, color="tab:red", linewidth=0.5))
    span = float(abs(c).max()) * 1.5 + 0.5
    ax.set_xlim(-span, span)
    ax.set_ylim(-span, span)
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=7)
    return save_figure(fig, path)


SEVERITY_COLORS = {"info": "tab:green", "warning": "tab:orange", "failure": "tab:red"}


def timeline_plot(records: pd.DataFrame, samples: pd.DataFrame | None, findings, path: Path, title: str = "") -> Path:
    """A run's health timeline: losses; D(x) / D(G(z)) (or the critic gap and penalty); gradient norms;
    sample diversity against the real data's. Each finding's step range is shaded by severity and named."""
    fig = Figure(figsize=(9, 9))
    axes = fig.subplots(4, 1, sharex=True)
    window = max(1, len(records) // 50)
    step = records["step"]

    def curves(ax, cols: dict[str, str], log: bool = False) -> None:
        for col, label in cols.items():
            if col in records and records[col].notna().any():
                ax.plot(step, records[col].rolling(window, min_periods=1).mean(), label=label, linewidth=1)
        if log:
            ax.set_yscale("log")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right", fontsize=7)

    curves(axes[0], {"d_loss": "D loss", "g_loss": "G loss"})
    axes[0].set_ylabel("loss")
    if "critic_gap" in records:
        curves(axes[1], {"critic_gap": "critic gap E[f(x)] - E[f(G(z))]", "gp": "gradient penalty"})
        axes[1].set_ylabel("critic")
    else:
        curves(axes[1], {"d_real": "D(x)", "d_fake": "D(G(z))", "d_acc_real": "D acc real", "d_acc_fake": "D acc fake"})
        axes[1].set_ylabel("D")
    curves(axes[2], {"d_grad_norm": "|grad D|", "g_grad_norm": "|grad G|"}, log=True)
    axes[2].set_ylabel("grad norm")
    if samples is not None and len(samples):
        axes[3].plot(samples["step"], samples["diversity"], marker=".", label="sample diversity")
        if "real_diversity" in samples:
            axes[3].axhline(float(samples["real_diversity"].iloc[-1]), color="grey", linestyle="--", label="real data")
        axes[3].legend(loc="upper right", fontsize=7)
    axes[3].set_ylabel("diversity")
    axes[3].set_xlabel("generator step")
    for i, f in enumerate(findings):
        for ax in axes:
            ax.axvspan(f.start_step, f.end_step, color=SEVERITY_COLORS[f.severity], alpha=0.12, linewidth=0)
        axes[0].text(f.start_step, 1.02 + 0.09 * (i % 3), f.name, transform=axes[0].get_xaxis_transform(), fontsize=7,
                     color=SEVERITY_COLORS[f.severity], va="bottom")  # staggered: spans often start together
    fig.suptitle(title)
    return save_figure(fig, path)


def save_figure(fig: Figure, path: Path) -> Path:
    """Lay out and write a figure atomically as PNG (a ``Figure`` needs no closing: nothing global holds it)."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path
