"""``variants``: a fan-out point.  Each image goes through every named branch (a stage list).

    - variants:
        starry: [{fast_style: {weights: starry.safetensors}}]
        scream: {stages: [{fast_style: {weights: scream.safetensors}}], strength: 0.6}

The stages before ``variants`` run once per image, the ones after it once per
branch; each (image, branch) is its own output under ``output/<branch>/``, its
own ledger line and its own failure (see plan.py for the units, and the top-level
``pick:`` for sending each image through only some branches).  The image way
runs the trunk once per batch and every branch on its result, so an image is
decoded once for all its branches; a clip (or a shard) runs the flat chain
``chain_for(middle, branch)`` once per branch.

``strength`` (0..1) blends a branch's output with its input, the trunk's frame,
in the stored (gamma-encoded) RGB values: ``strength * out + (1 - strength) * in``
(the input resized to the output's size first where the branch changes it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import JobError, WeightsError
from ..machine.context import RunContext
from ..ops.resize import resize
from .base import Stage
from .registry import get_stage, register

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Branch:
    name: str
    stages: tuple  # StageSpec of each stage (config.py), in order
    strength: float = 1.0


@dataclass(frozen=True)
class VariantsParams:
    branches: tuple[Branch, ...] = ()


@register
class Variants(Stage):
    name = "variants"
    kind = "variants"
    Params = VariantsParams

    def __init__(self, params: VariantsParams, ctx: RunContext) -> None:
        super().__init__(params, ctx)
        self.branches: dict[str, list[Stage]] = {}
        self.strengths = {b.name: b.strength for b in params.branches}
        for branch in params.branches:
            built = []
            for spec in branch.stages:
                try:
                    built.append(get_stage(spec.name)(spec.params, ctx))
                except WeightsError as exc:  # located at the branch's stage, not at 'variants'
                    raise JobError(str(exc), location=spec.location, where=spec.where) from None
            self.branches[branch.name] = built
        caps = [s.max_batch for stages in self.branches.values() for s in stages
                if s.max_batch is not None]
        self.max_batch = min(caps, default=None)

    @property
    def names(self) -> list[str]:
        return list(self.branches)

    def run_branch(self, name: str, x: torch.Tensor, run: Any,
                   keys: Sequence[str] | None = None) -> torch.Tensor:
        """Branch ``name`` on the trunk's batch ``x``, through ``run(stages, x)`` (the engine's
        ``run_stages``: it names the failing stage), blended by its ``strength``."""
        out = run(self.branches[name], x, keys)
        strength = self.strengths[name]
        if strength >= 1.0:
            return out
        if out.shape[-2:] != x.shape[-2:]:
            x = resize(x, tuple(out.shape[-2:]), interpolation="bilinear")
        import torch  # loaded by now: a branch's stages computed ``out``

        return torch.lerp(x.to(out.dtype), out, strength)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("variants fans out: the engine runs each branch (run_branch)")

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The largest branch's output (for the memory estimate of what follows)."""
        sizes = [_walk(stages, height, width) for stages in self.branches.values()]
        return max(sizes, key=lambda hw: hw[0] * hw[1], default=(height, width))

    def peak_bytes(self, channels: int, height: int, width: int, itemsize: int) -> int:
        """The heaviest branch, with the trunk's frame held beside it (every branch reads it)."""
        from ..machine.memory import chain_peak
        held = channels * height * width * itemsize
        return held + max((chain_peak(stages, channels, height, width, itemsize)[0]
                           for stages in self.branches.values()), default=0)

    def describe(self) -> str:
        parts = []
        for name, stages in self.branches.items():
            strength = self.strengths[name]
            shown = " -> ".join(s.describe() for s in stages) or "(as it is)"
            blend = f" at strength {strength:g}" if strength < 1 else ""
            parts.append(f"{name}: {shown}{blend}")
        return "variants(" + "; ".join(parts) + ")"

    def fingerprint(self) -> dict[str, Any]:
        return {"stage": self.name,
                "branches": {name: {"stages": [s.fingerprint() for s in stages],
                                    "strength": self.strengths[name]}
                             for name, stages in self.branches.items()}}


def _walk(stages: Sequence[Stage], height: int, width: int) -> tuple[int, int]:
    for stage in stages:
        height, width = stage.output_size(height, width)
    return height, width


def find_variants(middle: Sequence[Stage]) -> Variants | None:
    return next((s for s in middle if isinstance(s, Variants)), None)


def chain_for(middle: Sequence[Stage], variant: str | None) -> list[Stage]:
    """The flat transform chain one branch's outputs go through: the stages before
    ``variants``, the branch's, the ones after (``middle`` itself without variants).
    A branch's ``strength`` is a stage of its own here (``Blend``)."""
    fan = find_variants(middle)
    if fan is None:
        if variant is not None:
            raise ValueError(f"variant '{variant}' asked of a chain without variants")
        return list(middle)
    i = list(middle).index(fan)
    branch = fan.branches[variant]
    blend = [] if fan.strengths[variant] >= 1.0 else [Blend(fan, variant)]
    return [*middle[:i], *(blend or branch), *middle[i + 1:]]


class Blend(Stage):
    """A branch with its ``strength``, as one stage of a flat chain (videos, shards)."""

    name = "variants"

    def __init__(self, fan: Variants, variant: str) -> None:
        super().__init__(fan.params, fan.ctx)
        self.fan, self.variant = fan, variant  # a branch with a temporal stage has no strength

    per_image = True  # its branch may hold a stage that is

    def __call__(self, x: torch.Tensor, keys: Sequence[str] | None = None) -> torch.Tensor:
        from .chain import run_stages
        return self.fan.run_branch(self.variant, x, run_stages, keys)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return _walk(self.fan.branches[self.variant], height, width)

    def describe(self) -> str:
        shown = " -> ".join(s.describe() for s in self.fan.branches[self.variant]) or "(as it is)"
        return f"{shown} at strength {self.fan.strengths[self.variant]:g}"

    def fingerprint(self) -> dict[str, Any]:
        return {"stage": "blend", "strength": self.fan.strengths[self.variant],
                "stages": [s.fingerprint() for s in self.fan.branches[self.variant]]}
