"""Latent vectors that depend only on (seed, index): the `generate:` source's image i.

A resumed or re-run job regenerates exactly the images it is missing, in any order and
batch, on any worker: each vector is drawn from its own generator, seeded by a stable hash
of (seed, index) (blake2b, not ``hash()``, which changes between processes).
"""
from __future__ import annotations

import hashlib

import torch

__all__ = ["latent_vector", "latent_batch"]


def latent_vector(seed: int, index: int, dim: int) -> torch.Tensor:
    """z ~ N(0, 1)^dim (float32, CPU) for image ``index`` of a source seeded ``seed``."""
    digest = hashlib.blake2b(f"generate/{int(seed)}/{int(index)}".encode(), digest_size=8).digest()
    g = torch.Generator().manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))
    return torch.randn(dim, generator=g)


def latent_batch(seed: int, indices: list[int], dim: int) -> torch.Tensor:
    """``[len(indices), dim]``: row k is ``latent_vector(seed, indices[k], dim)``."""
    if not indices:
        return torch.empty(0, dim)
    return torch.stack([latent_vector(seed, i, dim) for i in indices])
