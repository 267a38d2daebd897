"""A history of generated images for the discriminator (Shrivastava et al. 2017, sec. 2.3; Zhu et al. 2017,
sec. 4: "we update the discriminators using a history of generated images rather than the ones produced by
the latest generators ... an image buffer that stores the 50 previously created images").

The rule is that of CycleGAN's ``ImagePool``: while the pool is not full, each new image is stored and
returned; once it is full, each new image is, with probability 1/2, swapped for a stored image chosen
uniformly (the new image takes that slot and the stored one is returned), and otherwise returned as is.
All randomness comes from the ``torch.Generator`` the pool is given, and the generator's state is part of
the pool's state: give the pool a generator of its own, so that ``load_state_dict`` restores exactly the
pool's future draws when a run resumes.
"""

from __future__ import annotations

from typing import Any

import torch

from ganbench.core.errors import GanbenchError

DEFAULT_SIZE = 50  # Zhu et al. 2017, sec. 4
SWAP_PROBABILITY = 0.5  # CycleGAN's ImagePool: "by 50% chance, the buffer will return a previously stored image"


class HistoryPool:
    """``query(images)`` -> a batch of the same shape, each image either the new one or one from the history."""

    def __init__(self, size: int = DEFAULT_SIZE, generator: torch.Generator | None = None):
        if size < 0:
            raise GanbenchError(f"the history pool size must be 0 (no pool) or more, got {size}")
        if generator is None:
            raise GanbenchError("HistoryPool needs a torch.Generator: its draws must be reproducible")
        self.size = size
        self.generator = generator
        self.images: list[torch.Tensor] = []

    def _draw_swap(self) -> int | None:
        """The slot whose image is returned instead of the new one, or None to return the new one."""
        if float(torch.rand((), generator=self.generator)) >= SWAP_PROBABILITY:
            return None
        return int(torch.randint(self.size, (), generator=self.generator))

    def _one(self, image: torch.Tensor) -> torch.Tensor:
        stored = image.detach().clone()
        if len(self.images) < self.size:
            self.images.append(stored)
            return stored
        slot = self._draw_swap()
        if slot is None:
            return stored
        old, self.images[slot] = self.images[slot], stored
        return old.to(image.device)  # a resumed pool holds its images on the CPU until they are swapped out

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        """The batch the discriminator sees in place of ``images`` (detached: no gradient reaches G through it)."""
        if self.size == 0:
            return images.detach()
        return torch.stack([self._one(image) for image in images])

    def state_dict(self) -> dict[str, Any]:
        stacked = torch.stack(self.images).cpu() if self.images else torch.empty(0)
        return {"size": self.size, "images": stacked, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["size"] != self.size:
            raise GanbenchError(f"the saved history pool holds up to {state['size']} images, this one {self.size}: "
                                "resume with the size the run was started with")
        self.images = list(state["images"].unbind(0)) if len(state["images"]) else []
        self.generator.set_state(state["generator"])
