"""What the AdaIN-decoder and GAN trainers share: the device, and a run's bookkeeping.

``StepLoop`` owns a run folder (``checkpoint.pt``, ``losses.csv``, ``samples/``): it refuses
to start over a saved run unless asked to resume, restores one (checked against the run's
record: data and options that change the math), and runs the steps, logging each, writing a
sample grid and an atomic checkpoint on schedule.  The trainer keeps the work of a step.

The steps run on their own RNG stream (``torch.random.fork_rng``): seeded from the run's
seed on a fresh start, restored from the checkpoint on resume, so anything in a step that
draws from the global RNG (a discriminator's dropout) resumes exactly, and the caller's
stream is left as it was.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import JobError
from ..machine.context import resolve_device, resolve_precision
from ..media.atomic import atomic_write
from ..media.images import write_image
from . import cyclegan_io as io

__all__ = ["StepInfo", "StepLoop", "derive_seed", "resolve"]


@dataclass(frozen=True)
class StepInfo:
    """What ``on_step`` hears after every step."""

    step: int  # completed steps, 1-based
    steps: int
    start_step: int  # the step this process started from (0, or the resumed one)
    losses: dict[str, float]
    seconds: float  # training wall time, across resumes


def derive_seed(scope: str, seed: int, what: str) -> int:
    """A stream of its own per consumer (init, crops, noise) from one user seed; blake2b, not
    ``hash()``, so it is the same in every process."""
    digest = hashlib.blake2b(f"{scope}/{seed}/{what}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def resolve(device: str, precision: str, where: str) -> tuple[torch.device, str]:
    """The options' device and precision, or a JobError saying what to pass."""
    try:
        resolved = resolve_device(device)
    except ValueError as exc:
        raise JobError(str(exc), where=where, hint="use --device auto or cpu") from None
    return resolved, resolve_precision(precision, resolved)


class StepLoop:
    def __init__(self, run_dir: Path, *, fmt: str, what: str, where: str, resume: bool) -> None:
        self.run_dir, self.fmt, self.what, self.where = run_dir, fmt, what, where
        self.ckpt = run_dir / io.CHECKPOINT
        if self.ckpt.exists() and not resume:  # before any data is read: fail at once
            raise JobError(f"{run_dir} already holds a training run ({self.ckpt.name})", where=where,
                           hint="pass --resume to continue it, or delete that folder or pick "
                                "another --out")

    def open(self, trainer: Any, record: dict[str, Any], steps: int, log_names: tuple[str, ...],
             log_every: int) -> int:
        """Restore a saved run into ``trainer`` (refused, naming what differs, if ``record``
        changed), open the loss log; the step to start from."""
        self.record, self.rng, start, self.elapsed, log_state = record, None, 0, 0.0, None
        resumed = self.ckpt.exists()
        if resumed:
            state = io.load_checkpoint(self.ckpt, self.fmt, self.what)
            io.check_same_run(self.ckpt, state["run"], record, where=self.where)
            trainer.load_state_dict(state)
            self.rng = state["rng"]
            start, self.elapsed, log_state = int(state["step"]), float(state["seconds"]), state["log"]
            if start > steps:
                raise JobError(f"the checkpoint {self.ckpt} is at step {start}, past --steps {steps}",
                               where=self.where, hint="raise --steps to continue training")
        (self.run_dir / "samples").mkdir(parents=True, exist_ok=True)
        self.log = io.LossLog(self.run_dir / io.LOSSES, log_every, start if resumed else None,
                              log_state, names=log_names)
        self.start = start
        return start

    def run(self, trainer: Any, device: torch.device, steps: int, seed: int, *,
            step: Callable[[int], dict[str, float]], lr: Callable[[int], float],
            grid: Callable[[], np.ndarray], sample_every: int, checkpoint_every: int,
            on_step: Callable[[StepInfo], Any] | None) -> int:
        """Steps ``start .. steps - 1`` (``step(index)`` trains one and returns its losses;
        ``lr(index)`` is logged beside them); returns the last step done."""
        done, t0 = self.start, time.perf_counter()
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            if self.rng is None:
                torch.manual_seed(seed)
            else:
                torch.set_rng_state(self.rng["torch"])
                if device.type == "cuda" and self.rng.get("cuda"):
                    torch.cuda.set_rng_state_all(self.rng["cuda"])
            for index in range(self.start, steps):
                losses = step(index)
                done, last = index + 1, index + 1 == steps
                seconds = self.elapsed + time.perf_counter() - t0
                self.log.add(done, losses, lr(index), seconds, last)
                if done % sample_every == 0 or last:
                    picture = grid()
                    atomic_write(self.run_dir / "samples" / f"step_{done:07d}.png",
                                 lambda tmp: write_image(picture, tmp, "png"))
                if done % checkpoint_every == 0 or last:
                    self._save(trainer, device, done, seconds)
                if on_step is not None:
                    on_step(StepInfo(done, steps, self.start, losses, seconds))
        return done

    def _save(self, trainer: Any, device: torch.device, step: int, seconds: float) -> None:
        rng = {"torch": torch.get_rng_state(),
               "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else []}
        io.save_checkpoint(self.ckpt, {**trainer.state_dict(), "step": step, "seconds": seconds,
                                       "run": self.record, "log": self.log.state_dict(), "rng": rng},
                           self.fmt)
