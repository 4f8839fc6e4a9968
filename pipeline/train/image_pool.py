"""The history buffer of generated images that CycleGAN's discriminators see.

Shrivastava et al. 2017 ("Learning from Simulated and Unsupervised Images
through Adversarial Training") update the discriminator with a history of
generated images rather than only the latest ones, so the generator cannot
win by oscillating between modes the discriminator has just forgotten; Zhu et
al. 2017 (CycleGAN, section 4) keep 50.  Behaviour matches junyanz
``util/image_pool.py``: until the pool is full every image is stored and
returned; after that, each image is, with probability 1/2, swapped for a
random stored one (which is returned instead), else returned as it is.

Upstream draws from Python's global ``random``; here the pool owns a
``torch.Generator``, so ``state_dict()`` captures its behaviour exactly and a
resumed run draws what an uninterrupted one would have drawn.
"""
from __future__ import annotations

import torch

__all__ = ["ImagePool"]


class ImagePool:
    """``query(images)`` -> a batch of the same shape, some of it from history."""

    def __init__(self, pool_size: int = 50, seed: int = 0) -> None:
        if pool_size < 0:
            raise ValueError(f"pool_size must be 0 or more, got {pool_size}")
        self.pool_size = int(pool_size)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.images: list[torch.Tensor] = []  # each [1, C, H, W], detached

    def __len__(self) -> int:
        return len(self.images)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Images for the discriminator, one decision per image of the batch."""
        if self.pool_size == 0:  # pool disabled: the discriminator sees the latest only
            return images
        out = []
        for image in images.detach().split(1):
            if len(self.images) < self.pool_size:
                self.images.append(image)
                out.append(image)
            elif float(torch.rand((), generator=self.generator)) > 0.5:
                index = int(torch.randint(0, self.pool_size, (), generator=self.generator))
                out.append(self.images[index])
                self.images[index] = image
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict:
        """Contents (on the CPU) and generator state: tensors and ints only, so
        ``torch.load(weights_only=True)`` reads it."""
        images = (torch.cat(self.images, 0).cpu() if self.images
                  else torch.empty(0, dtype=torch.float32))
        return {"pool_size": self.pool_size, "images": images,
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        if int(state["pool_size"]) != self.pool_size:
            raise ValueError(f"pool size mismatch: saved {state['pool_size']}, "
                             f"this pool {self.pool_size}")
        images = state["images"]
        self.images = list(images.to(device).split(1)) if images.numel() else []
        self.generator.set_state(state["generator"])
