"""Perceptual losses: pure functions over VGG features, shared by the Gatys
optimizer (``pipeline.stages.gatys_optimize``) and the fast-style trainer.

Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional Neural
Networks", CVPR 2016: content = feature distance at one deep layer, style =
Gram-matrix distance over several layers.  Johnson, Alahi & Fei-Fei,
"Perceptual Losses for Real-Time Style Transfer and Super-Resolution", ECCV
2016: the same losses train a feed-forward net, plus total variation.

Magnitudes depend on the feature extractor (Caffe-normalized VGG activations
are far larger than torchvision's), so weights are tuned per source.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

__all__ = ["gram_matrix", "content_loss", "style_loss", "tv_loss"]


def gram_matrix(f: torch.Tensor) -> torch.Tensor:
    """``[N, C, H, W] -> [N, C, C]``: ``F F^T / (C H W)``, in float32.

    Dividing by ``C*H*W`` (as Johnson et al. do) makes the value independent
    of the image size; float32 because a sum over H*W products overflows or
    loses most of its bits in fp16/bf16.
    """
    if f.dim() != 4:
        raise ValueError(f"gram_matrix expects [N, C, H, W], got shape {tuple(f.shape)}")
    n, c, h, w = f.shape
    flat = f.reshape(n, c, h * w).float()
    return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


def content_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error between two feature maps (computed in float32)."""
    return F.mse_loss(a.float(), b.float())


def style_loss(feats: Mapping[str, torch.Tensor], target_grams: Mapping[str, torch.Tensor],
               layer_weights: Mapping[str, float] | None = None) -> torch.Tensor:
    """Sum over ``target_grams``' layers of ``weight * MSE(gram(feats[l]), target[l])``.

    A target of shape ``[C, C]`` or ``[1, C, C]`` is broadcast over the
    batch; ``layer_weights`` defaults to 1 per layer (a layer missing from
    it gets 0, so a dict can switch layers off).
    """
    if not target_grams:
        raise ValueError("style_loss needs at least one target layer")
    missing = [k for k in target_grams if k not in feats]
    if missing:
        raise KeyError(f"style_loss: no features for layer(s) {missing}; got {list(feats)}")
    total = None
    for name, target in target_grams.items():
        weight = 1.0 if layer_weights is None else float(layer_weights.get(name, 0.0))
        g = gram_matrix(feats[name])
        t = target.float().expand_as(g) if target.dim() == 2 or target.shape[0] == 1 else target.float()
        term = weight * F.mse_loss(g, t)
        total = term if total is None else total + term
    return total


def tv_loss(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation: mean absolute difference between
    horizontal neighbours plus that between vertical neighbours, over
    ``[..., H, W]`` (L1, which smooths noise but keeps edges, unlike the
    squared form; the same choice as pastiche)."""
    x = x.float()
    zero = x.new_zeros(())  # a side of 1 pixel has no neighbours (mean of nothing is NaN)
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().mean() if x.shape[-1] > 1 else zero
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().mean() if x.shape[-2] > 1 else zero
    return dx + dy
