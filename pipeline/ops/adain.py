"""Adaptive instance normalization (Huang & Belongie 2017): pure kernels over features.

``mean_std`` gives per-image, per-channel statistics over H and W; ``adain``
moves a feature map's statistics onto given ones.  Both work in float32
whatever the input's dtype (a variance over thousands of 16-bit values loses
most of its bits) and return the input's dtype.
"""
from __future__ import annotations

import torch

__all__ = ["mean_std", "adain", "EPS"]

EPS = 1e-5  # added to the variance, as upstream: flat channels must not divide by zero


def mean_std(f: torch.Tensor, eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """``[N, C, H, W]`` -> mean and std ``[N, C, 1, 1]`` (population variance + ``eps``)."""
    if f.dim() != 4:
        raise ValueError(f"mean_std expects [N, C, H, W], got shape {tuple(f.shape)}")
    var, mean = torch.var_mean(f.float(), dim=(2, 3), keepdim=True, correction=0)
    return mean, (var + eps).sqrt()


def adain(content: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
          eps: float = EPS) -> torch.Tensor:
    """``std * (content - mean(content)) / std(content) + mean``, per image and channel;
    ``mean``/``std`` of shape ``[1 or N, C, 1, 1]``.  Does not modify ``content``."""
    c_mean, c_std = mean_std(content, eps)
    out = (content.float() - c_mean) / c_std * std.float() + mean.float()
    return out.to(content.dtype)
