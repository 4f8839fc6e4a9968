"""Small pieces of GAN training shared by the CycleGAN loop: loss, init, schedule.

* LSGAN (Mao et al. 2017, "Least Squares Generative Adversarial Networks"):
  the discriminator regresses real to 1 and fake to 0, the generator pushes
  fakes towards 1.  Zhu et al. 2017 (CycleGAN, section 4) use it instead of
  the log loss because it trains more stably and gives better images.
* Weights start from N(0, 0.02) as in junyanz ``networks.init_weights``
  (``init_type='normal'``), biases at 0; BatchNorm scales from N(1, 0.02).
* The learning rate is constant, then decays linearly to zero: the paper's
  100 + 100 epochs, expressed in optimizer steps.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["lsgan_loss", "init_normal", "linear_decay"]


def lsgan_loss(prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Mean squared error of a PatchGAN output map to an all-1 or all-0 target.

    Computed in fp32: under autocast the map may be bf16/fp16, and squaring
    small differences there loses the precision the gradient needs.
    """
    prediction = prediction.float()
    target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
    return F.mse_loss(prediction, target)


def init_normal(net: nn.Module, generator: torch.Generator, gain: float = 0.02, *,
                linear: bool = True) -> nn.Module:
    """Upstream's 'normal' init, drawn from ``generator`` so it is reproducible
    without touching the global RNG.  ``linear=False`` leaves ``nn.Linear`` layers at
    PyTorch's default, as PyTorch-GAN's DCGAN does (its ``weights_init_normal`` matches
    only Conv and BatchNorm2d): a discriminator whose last Linear also starts at N(0, 0.02),
    after convolutions that do too, begins with logits so near 0 that neither net learns."""
    kinds = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear) if linear else (nn.Conv2d, nn.ConvTranspose2d)
    for module in net.modules():
        if isinstance(module, kinds):
            nn.init.normal_(module.weight, 0.0, gain, generator=generator)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            # BatchNorm's weight is a scale, not a filter: centre it at 1.
            nn.init.normal_(module.weight, 1.0, gain, generator=generator)
            nn.init.zeros_(module.bias)
    return net


def linear_decay(step: int, steps: int, decay_from: int) -> float:
    """Learning-rate factor for 0-based update ``step`` of ``steps``: 1 before
    ``decay_from``, then a straight line that would reach 0 at ``steps`` (so
    the last update still moves, by 1/(steps - decay_from) of the base rate).

    A pure function of the step: resuming needs no scheduler object.
    """
    if step < decay_from:
        return 1.0
    return max(0.0, (steps - step) / max(1, steps - decay_from))
