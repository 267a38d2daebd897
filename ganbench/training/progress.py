"""Training progress for a person watching: a tqdm bar on a terminal, plain lines elsewhere."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm


class Progress:
    """A tqdm bar on a terminal; otherwise (a log file, a batch job, a sweep worker) a plain line at most
    every ``every_s`` seconds with the step, the share done, the per-run images/s and the losses."""

    def __init__(self, total_steps: int, desc: str, start: int = 0, images_per_step: int = 0, every_s: float = 60.0):
        self.desc, self.total, self.step = desc, total_steps, start
        self.images_per_step, self.every_s = images_per_step, every_s
        self.last_t, self.last_step = time.perf_counter(), start
        self.bar = None
        if sys.stderr.isatty():
            self.bar = tqdm(total=total_steps, initial=start, desc=desc, unit="step", dynamic_ncols=True)

    def update(self, step: int, info: dict) -> None:
        """Training has reached ``step`` (counted from the run's start)."""
        steps, self.step = step - self.step, step
        if self.bar is not None:
            self.bar.update(steps)
            self.bar.set_postfix({k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in info.items()}, refresh=False)
            return
        now = time.perf_counter()
        if now - self.last_t < self.every_s:
            return
        rate = (self.step - self.last_step) * self.images_per_step / (now - self.last_t)
        values = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in info.items())
        self.line(f"step {self.step}/{self.total} ({100 * self.step / max(self.total, 1):.0f}%)  {values}"
                  + (f"  {rate:.0f} images/s" if self.images_per_step else ""))
        self.last_t, self.last_step = now, self.step

    def line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(f"[{self.desc}] {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
