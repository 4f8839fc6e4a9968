"""Total-variation denoising, batched on the device.

Rudin-Osher-Fatemi model solved by Chambolle's projection algorithm:
A. Chambolle, "An algorithm for total variation minimization and
applications", J. Math. Imaging and Vision 20, 89-97 (2004).

The iteration, energy and stopping rule follow
``skimage.restoration.denoise_tv_chambolle(img, weight, channel_axis=-1)``
(its ``_denoise_tv_chambolle_nd`` on each 2D channel), so results agree with
it; the difference is that every (image, channel) plane of the batch runs at
once, each with its own stopping iteration.
"""
from __future__ import annotations

import torch

__all__ = ["tv_denoise"]


def tv_denoise(x: torch.Tensor, weight: float, *, eps: float = 2e-4,
               max_iter: int = 200, check_every: int = 10) -> torch.Tensor:
    """Denoise each channel of each image of ``[..., C, H, W]`` (0..255) in 2D.

    ``weight`` means what it means to skimage on [0, 1] images (larger is
    smoother).  A plane stops at the first iteration where its energy changes
    by less than ``eps`` times its initial energy, or after ``max_iter``.
    ``check_every`` only sets how often the host asks whether every plane has
    stopped (a device sync); it does not change the result.  With C == 4 the
    alpha channel passes through unchanged.  ``weight <= 0`` returns a copy.
    """
    if not x.is_floating_point():
        raise TypeError(f"tv_denoise expects a float tensor in 0..255, got {x.dtype}")
    if x.dim() < 3:
        raise ValueError(f"tv_denoise expects [..., C, H, W], got shape {tuple(x.shape)}")
    if max_iter < 1 or check_every < 1:
        raise ValueError(f"max_iter and check_every must be >= 1, got {max_iter}, {check_every}")
    if weight <= 0 or x.numel() == 0:
        return x.clone()
    if x.shape[-3] == 4:
        rgb = _denoise_planes(x[..., :3, :, :], weight, eps, max_iter, check_every)
        return torch.cat([rgb, x[..., 3:, :, :]], dim=-3)
    return _denoise_planes(x, weight, eps, max_iter, check_every)


def _denoise_planes(x, weight, eps, max_iter, check_every):
    h, w = x.shape[-2:]
    # [0, 1] scale so weight and eps mean what they mean to skimage (the energy
    # mixes a squared term with a linear one, so it is not scale invariant).
    planes = x.reshape(-1, h, w).to(torch.float32) / 255.0
    out = _chambolle(planes, float(weight), eps, max_iter, check_every)
    return (out * 255.0).to(x.dtype).reshape(x.shape)


def _chambolle(image, weight, eps, max_iter, check_every):
    """Chambolle iterations on ``image`` [B, H, W]; each plane stops on its own."""
    n, h, w = image.shape
    tau = 0.25  # 1 / (2 * ndim): the step that guarantees convergence in 2D
    result = torch.empty_like(image)
    idx = torch.arange(n, device=image.device)  # active planes -> rows of result
    p = image.new_zeros((2, n, h, w))           # dual field, one vector per pixel
    for i in range(max_iter):
        # out = image + div(p) (skimage's d is the negative of -div); d == 0 at i == 0.
        d = -(p[0] + p[1])
        d[:, 1:, :] += p[0, :, :-1, :]
        d[:, :, 1:] += p[1, :, :, :-1]
        out = image + d
        g = torch.zeros_like(p)  # forward differences, zero on the last row/column
        g[0, :, :-1, :] = out[:, 1:, :] - out[:, :-1, :]
        g[1, :, :, :-1] = out[:, :, 1:] - out[:, :, :-1]
        norm = torch.sqrt(g[0].square() + g[1].square())
        energy = (d.square().sum((1, 2)) + weight * norm.sum((1, 2))) / (h * w)
        if i == 0:
            e_init, e_prev = energy, energy
            done = torch.zeros(n, dtype=torch.bool, device=image.device)
            held = out
        else:
            # Freeze each plane's output at its own first converged iteration,
            # on the device, so no host sync is needed to decide it.
            newly = ~done & ((e_prev - energy).abs() < eps * e_init)
            held = torch.where(newly[:, None, None], out, held)
            done = done | newly
            e_prev = energy
        if i == max_iter - 1:
            break
        p = (p - tau * g) / (1.0 + norm * (tau / weight))
        if (i + 1) % check_every == 0:
            done_host = done.cpu()  # the only sync: every check_every iterations
            if bool(done_host.all()):
                break
            if bool(done_host.any()):
                # Retire finished planes so later iterations only pay for the rest.
                fin = done_host.nonzero().squeeze(1).to(image.device)
                keep = (~done_host).nonzero().squeeze(1).to(image.device)
                result.index_copy_(0, idx[fin], held[fin])
                idx, image, p, held = idx[keep], image[keep], p[:, keep], held[keep]
                e_init, e_prev, done = e_init[keep], e_prev[keep], done[keep]
    # Planes that never converged return their last iterate, as skimage does.
    result.index_copy_(0, idx, torch.where(done[:, None, None], held, out))
    return result
