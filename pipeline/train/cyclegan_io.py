"""What CycleGAN training writes: checkpoints, exported weights, the loss log.

Kept apart from the loop in ``cyclegan.py`` so each file does one job.

* Training checkpoints hold only tensors, numbers, strings, lists and dicts,
  so ``torch.load(weights_only=True)`` reads them: a checkpoint is data, never
  code.  They are written under a temporary name, fsynced and renamed, so a
  kill leaves either the old file or the new one, never half of one.
* Exported generators come in the junyanz layout (``latest_net_G_A.pth``:
  a plain state_dict) and as safetensors with metadata; both load in the
  ``cyclegan`` stage unchanged.
"""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as safetensors_bytes

from ..errors import JobError, WeightsError
from ..media.atomic import atomic_write

CHECKPOINT = "checkpoint.pt"
LOSSES = "losses.csv"
FORMAT = "pipeline.train.cyclegan/1"
LOSS_NAMES = ("D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B")


def save_checkpoint(path: Path, state: dict[str, Any], fmt: str = FORMAT) -> None:
    atomic_write(path, lambda tmp: torch.save({"format": fmt, **state}, tmp))


def load_checkpoint(path: Path, fmt: str = FORMAT, what: str = "CycleGAN") -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise WeightsError(path, f"cannot read the training checkpoint ({first})",
                           hint="delete it to start over, or restore it from a backup") from None
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise WeightsError(path, f"not a {what} training checkpoint written by this trainer",
                           hint="point --out at the folder of the run you want to continue")
    return state


def check_same_run(path: Path, saved: dict[str, Any], now: dict[str, Any],
                   where: str = "train cyclegan") -> None:
    """Refuse to continue a run whose data or math would differ, naming what."""
    changes = [f"{key} was {saved.get(key)!r}, now {value!r}"
               for key, value in now.items() if saved.get(key) != value]
    if changes:
        raise JobError(f"cannot resume the run in {path.parent}: " + "; ".join(changes),
                       where=where,
                       hint="resume with the saved values, or start a new run with another --out")


def describe_files(paths: list[Path], root: Path) -> str:
    """Count and digest of relative names and sizes: a resume check that
    survives moving the data set, not changing it."""
    h = hashlib.sha256()
    for p in paths:
        h.update(f"{p.relative_to(root).as_posix()}\0{p.stat().st_size}\n".encode())
    return f"{len(paths)} files, digest {h.hexdigest()[:16]}"


def generator_metadata(opts: Any, count_a: int, count_b: int,
                       step: int) -> dict[str, dict[str, str]]:
    """safetensors metadata (strings only) for G_A (A->B) and G_B (B->A)."""
    common = {"architecture": opts.generator, "ngf": str(opts.ngf), "norm": opts.norm,
              "folder_a": opts.folder_a.name, "folder_a_images": str(count_a),
              "folder_b": opts.folder_b.name, "folder_b_images": str(count_b),
              "lambda_cycle": str(opts.lambda_cycle), "lambda_identity": str(opts.lambda_identity),
              "image_size": str(opts.image_size), "steps": str(step), "seed": str(opts.seed),
              "torch": torch.__version__,
              "trainer": "pipeline.train.cyclegan (Zhu et al. 2017, LSGAN of Mao et al. 2017)"}
    return {"G_A": {**common, "direction": "A->B"}, "G_B": {**common, "direction": "B->A"}}


def export_weights(out: Path, nets: dict[str, torch.nn.Module],
                   metadata: dict[str, dict[str, str]]) -> dict[str, Path]:
    """``latest_net_{name}.pth`` for every net; ``{name}.safetensors`` for those
    with metadata (the generators)."""
    written = {}
    for name, net in nets.items():
        sd = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        pth = out / f"latest_net_{name}.pth"
        atomic_write(pth, lambda tmp, sd=sd: torch.save(sd, tmp))
        written[name] = pth
        if name in metadata:
            st = out / f"{name}.safetensors"
            # Bytes written by us, not safetensors' save_file, which creates files 0600.
            data = safetensors_bytes(sd, metadata[name])
            atomic_write(st, lambda tmp, data=data: tmp.write_bytes(data))
            written[f"{name}.safetensors"] = st
    return written


class LossLog:
    """``losses.csv``: one row every ``every`` steps (and at the last one), each
    the mean over the steps since the previous row.

    The running sums are part of the training state, so a resumed run writes
    the same rows as an uninterrupted one; rows past the checkpoint (written
    before a kill) are dropped on resume because they will be written again.
    """

    def __init__(self, path: Path, every: int, resume_at: int | None,
                 state: dict[str, Any] | None = None, names: tuple[str, ...] = LOSS_NAMES) -> None:
        self.path, self.every, self.names = path, every, names
        self.sums = list((state or {}).get("sums", [0.0] * len(names)))
        self.count = int((state or {}).get("count", 0))
        rows = self._rows_up_to(resume_at) if resume_at is not None else []
        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(("step", *names, "lr", "seconds"))
                w.writerows(rows)
        atomic_write(path, write)

    def _rows_up_to(self, step: int) -> list[list[str]]:
        if not self.path.is_file():
            return []
        with open(self.path, newline="") as f:
            rows = list(csv.reader(f))[1:]
        return [r for r in rows if r and r[0].isdigit() and int(r[0]) <= step]

    def add(self, step: int, losses: dict[str, float], lr: float, seconds: float,
            last: bool) -> None:
        self.sums = [s + losses[n] for s, n in zip(self.sums, self.names)]
        self.count += 1
        if step % self.every and not last:
            return
        row = [str(step), *(f"{s / self.count:.6g}" for s in self.sums), f"{lr:.6g}",
               f"{seconds:.1f}"]
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow(row)
        self.sums, self.count = [0.0] * len(self.names), 0

    def state_dict(self) -> dict[str, Any]:
        return {"sums": list(self.sums), "count": self.count}
