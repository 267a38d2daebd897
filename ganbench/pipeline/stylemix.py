"""``ganbench style-mix``: the style-mixing grid of a style-based generator (Karras et al. 2019,
arXiv:1812.04948, sec. 3.1, Fig. 3).

Row i takes the coarse styles (the first ``cutoff`` style inputs: by default the layers up to 8x8) from
w_i, column j the fine styles (the rest) from w_j; the first row and column show the two sources alone.
The run is opened like ``ganbench sample`` (``ganbench.pipeline.use``); w may be truncated (psi) first.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ganbench.core.errors import GanbenchError
from ganbench.core.plots import save_grid
from ganbench.nets.stylegan import StyleGenerator, style_mix_ws, truncate
from ganbench.pipeline.use import Samples, _generator, open_run
from ganbench.nets.sampling import to_uint8

BLANK = 255  # the empty top-left cell


def mixing_grid(G, w_rows: torch.Tensor, w_cols: torch.Tensor, cutoff: int, batch_size: int = 256) -> torch.Tensor:
    """uint8 (rows + 1) * (cols + 1) images, row-major: the sources on the first row and column, the mixes inside."""
    def draw(ws: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([to_uint8(G.synthesis(ws[i:i + batch_size])).cpu() for i in range(0, len(ws), batch_size)])

    rows, cols = len(w_rows), len(w_cols)
    mixed = draw(style_mix_ws(G, w_rows, w_cols, cutoff))
    row_src, col_src = draw(w_rows), draw(w_cols)
    grid = torch.full((rows + 1, cols + 1, *row_src.shape[1:]), BLANK, dtype=torch.uint8)
    grid[0, 1:] = col_src
    grid[1:, 0] = row_src
    grid[1:, 1:] = mixed.view(rows, cols, *mixed.shape[1:])
    return grid.flatten(0, 1)


def style_mix(run: str, rows: int = 4, cols: int = 6, seed: int = 0, cutoff: int | None = None,
              truncation: float | None = None, ema: bool = False, out: str | Path | None = None,
              tracking_uri: str | None = None, device: str = "cpu") -> Samples:
    """A PNG style-mixing grid of a run's style-based generator: ``rows`` + ``cols`` random w (from ``seed``),
    coarse styles (style inputs [0, cutoff)) from the row's w, fine ones from the column's."""
    if rows < 1 or cols < 1:
        raise GanbenchError(f"rows={rows}, cols={cols}: expected at least one row and one column")
    handle = open_run(run, tracking_uri)
    G = _generator(handle, ema, device)
    if not isinstance(G, StyleGenerator):
        raise GanbenchError(f"style-mix needs a style-based generator (stylegan-g, with a mapping network); model "
                            f"{handle.spec.model.name!r} has {handle.spec.model.generator.arch}")
    k = G.synthesis.coarse_ws if cutoff is None else cutoff
    z = torch.randn(rows + cols, G.z_dim, generator=torch.Generator().manual_seed(seed))
    p = next(G.parameters())
    with torch.no_grad():
        w = G.mapping(z.to(p.device, p.dtype))
        if truncation is not None:
            w = truncate(w, G.mapping.w_avg, truncation)
    images = mixing_grid(G, w[:rows], w[rows:], k)
    name = f"style_mix_seed{seed}_cut{k}" + (f"_psi{truncation:g}" if truncation is not None else "")
    name += "_ema" if ema else ""
    png = Path(out) if out else handle.run_dir / "samples" / f"{name}.png"
    save_grid(images, png, nrow=cols + 1)
    return Samples(png, None, images, None, handle.checkpoint)
