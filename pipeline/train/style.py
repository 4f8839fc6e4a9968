"""Training a fast style network: Johnson et al. 2016's recipe.

Justin Johnson, Alexandre Alahi, Li Fei-Fei, "Perceptual Losses for Real-Time
Style Transfer and Super-Resolution", ECCV 2016: a ``TransformerNet`` is
trained with Adam on random content crops to minimise a perceptual loss
measured by a frozen VGG: a feature (content) loss at one layer, Gram-matrix
(style) losses at several, and optionally total variation.

Outputs, for ``out = models/candy.safetensors``:

* ``out``: the final weights (safetensors, metadata describing the run); it
  loads in the ``fast_style`` stage unchanged.  ``export_pth`` adds
  ``candy.pth`` in pytorch/examples' layout (a bare state dict).
* ``models/candy_train/``: ``losses.csv`` (weighted loss terms, averaged over
  ``log_every`` steps), ``samples/step_NNNNNNN.png`` (content | output for a
  fixed batch) and ``checkpoints/step_NNNNNNN.pt`` (the last two are kept).

Resume is exact: batches come from the stateless ``RandomCrops`` (a pure
function of seed and step), and a checkpoint holds the model, Adam's state,
the step, the loss-log window and the RNG state, so stopping after step k and
resuming gives the same weights as never stopping (tested bitwise on CPU).
"""
from __future__ import annotations

import csv
import hashlib
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import JobError, WeightsError
from ..hashing import file_sha256
from ..machine.context import dtypes, resolve_device, resolve_precision
from ..media.atomic import atomic_write
from ..media.images import read_image, write_image
from ..models.checkpoints import load_fast_style
from ..models.transformer_net import TransformerNet
from ..models.vgg import load_perceptual
from ..ops.losses import content_loss, gram_matrix, style_loss, tv_loss
from ..ops.resize import resize, target_size
from .data import RandomCrops, scan_images, to_rgb
from .style_options import StyleTrainOptions

CSV_HEADER = ("step", "content", "style", "tv", "total", "seconds")
_CKPT = re.compile(r"step_(\d+)\.pt")
_KEEP_CHECKPOINTS = 2


@dataclass(frozen=True)
class StepReport:
    """Passed to ``on_step`` after every step; losses are weighted terms."""

    step: int
    steps: int
    start_step: int  # the step this run (or resumed run) started after
    content: float
    style: float
    tv: float
    total: float
    seconds: float  # training time so far, across resumes


@dataclass
class _LogWindow:
    sums: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])
    count: int = 0


def train_style(opts: StyleTrainOptions, on_step: Callable[[StepReport], None] | None = None, *,
                on_skipped: Callable[[list[tuple[Path, str]]], None] | None = None) -> Path:
    """Train, write ``opts.out`` (and the run folder), return ``opts.out``."""
    # Cheap checks first: a typo should not cost a scan of 80,000 images.
    device = resolve_device(opts.device)
    precision = resolve_precision(opts.precision, device)
    run_dir, ckpt_dir = opts.run_dir, opts.run_dir / "checkpoints"
    latest = _latest_checkpoint(ckpt_dir)
    if latest is not None and not opts.resume:
        raise JobError(f"{run_dir} already holds a training run (up to step {_step_of(latest)})",
                       where="train style",
                       hint="pass --resume to continue it, or delete that folder or pick another --out")
    style_imgs = [_load_style(p, opts.resolved_style_size) for p in opts.styles]  # MediaError names it
    style_sha = ",".join(file_sha256(p) for p in opts.styles)
    vgg = load_perceptual(opts.vgg, taps=tuple(dict.fromkeys((opts.content_layer,
                                                              *opts.style_layers))))
    vgg = vgg.to(device).eval().requires_grad_(False)
    targets, layer_weights = [], []  # per style
    with torch.no_grad():
        for style_img in style_imgs:
            feats = vgg(style_img.to(device))
            targets.append({k: gram_matrix(feats[k]) for k in opts.style_layers})
            layer_weights.append(_layer_weights(opts, targets[-1]))
    styles = len(opts.styles)

    # Samples written into a run folder inside the content folder must not
    # become training data (nor change the data fingerprint on resume).
    paths, skipped = scan_images(opts.content, min_side=opts.image_size, exclude=run_dir)
    if on_skipped is not None:
        on_skipped(skipped)
    crops = RandomCrops(paths, opts.image_size, opts.seed)
    fingerprint = _fingerprint(opts, precision, style_sha, paths)

    with torch.random.fork_rng(devices=[]):  # init is a function of the seed alone
        torch.manual_seed(opts.seed)
        model = TransformerNet(styles, opts.width)
    if opts.init is not None:
        _start_from(model, opts.init)
    model = model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=opts.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    autocast = dict(device_type=device.type, dtype=dtypes()[precision], enabled=precision != "fp32")

    step, elapsed, window = 0, 0.0, _LogWindow()
    if latest is not None:
        step, elapsed, window = _restore(latest, fingerprint, model, optimizer, scaler)
        if step > opts.steps:
            raise JobError(f"the checkpoint {latest} is at step {step}, past --steps {opts.steps}",
                           where="train style", hint="raise --steps to continue training")
    # Temporary files a SIGKILL left behind: only our own names, since --out
    # may share its folder with other tools' files.
    stale = [*ckpt_dir.glob(".*.partial"), *(run_dir / "samples").glob(".*.partial"),
             *(opts.out.with_name(f".{p.name}.partial") for p in (opts.out, opts.out.with_suffix(".pth")))]
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    log_path = run_dir / "losses.csv"
    _prepare_log(log_path, step)
    (run_dir / "samples").mkdir(parents=True, exist_ok=True)
    sample_x = crops.batch(0, min(4, opts.batch_size, len(crops)))  # fixed for the whole run

    start_step, bad_steps = step, 0
    while step < opts.steps:
        t0 = time.perf_counter()
        x = crops.batch(step, opts.batch_size).to(device).float()
        k = step % styles  # the styles in turn: a function of the step, so resume is exact
        model.set_style(k)
        with torch.autocast(**autocast):
            y = model(x)
            fy = vgg(y)
            with torch.no_grad():
                fx = vgg(x)[opts.content_layer]
        fy = {k: v.float() for k, v in fy.items()}  # losses and Grams in fp32
        c = opts.content_weight * content_loss(fy[opts.content_layer], fx.float())
        s = opts.style_weight * style_loss(fy, targets[k], layer_weights[k])
        tv = opts.tv_weight * tv_loss(y.float()) if opts.tv_weight else torch.zeros((), device=device)
        total = c + s + tv
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        scaler.step(optimizer)
        scaler.update()
        step += 1
        values = torch.stack([c, s, tv, total]).detach().tolist()  # one device sync
        elapsed += time.perf_counter() - t0
        bad_steps = 0 if math.isfinite(values[3]) else bad_steps + 1
        # fp16's GradScaler skips the odd overflowing step by design; anything
        # else non-finite means the run has diverged and would only waste time.
        if bad_steps > (50 if scaler.is_enabled() else 0):
            raise FloatingPointError(f"the loss is {values[3]} at step {step}: training diverged; "
                                     "lower --lr or the loss weights, or use --precision fp32")

        window.sums = [a + b for a, b in zip(window.sums, values)]
        window.count += 1
        last = step == opts.steps
        if step % opts.log_every == 0 or last:
            _append_log(log_path, step, [v / window.count for v in window.sums], elapsed)
            window = _LogWindow()
        if step % opts.sample_every == 0 or last:
            _write_sample(model, sample_x, device, autocast,
                          run_dir / "samples" / f"step_{step:07d}.png", styles)
        if step % opts.checkpoint_every == 0 or last:
            _save_checkpoint(ckpt_dir, step, model, optimizer, scaler, fingerprint, elapsed, window)
        if on_step is not None:
            on_step(StepReport(step, opts.steps, start_step, *values, elapsed))

    _save_model(model, opts, style_sha, len(paths), precision, layer_weights)
    return opts.out


# --------------------------------------------------------------------------- helpers

def _load_style(path: Path, long_side: int) -> torch.Tensor:
    """The style image as float ``[1, 3, h, w]`` 0..255, long side ``long_side``."""
    a = to_rgb(read_image(path))  # MediaError names the file
    x = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float()
    size = target_size(a.shape[0], a.shape[1], long_side=long_side, multiple_of=1)
    return resize(x, size, interpolation="bicubic")


def _start_from(model: TransformerNet, path: Path) -> None:
    """Fine-tuning: the weights of ``path``, of this run's width.  A single-style network
    may start a multi-style one: its (scale, shift) goes to every style, and the styles
    then part (Dumoulin et al. 2017: the convolutions are shared by all styles, so a
    trained one spares learning them again)."""
    net = load_fast_style(path)  # WeightsError names the file
    styles = net.arch.styles
    if net.arch.width != model.width or styles not in (1, model.styles):
        raise WeightsError(path, f"--init holds a network of width {net.arch.width} with "
                                 f"{styles} style(s); this run trains width "
                                 f"{model.width} with {model.styles}",
                           hint="pass the same --width, and a single-style network or one "
                                "with as many styles as --style images")
    own = model.state_dict()
    state = {k: v.expand_as(own[k]).clone() if v.shape != own[k].shape else v
             for k, v in net.state_dict().items()}
    with torch.no_grad():
        model.load_state_dict(state)


def _layer_weights(opts: StyleTrainOptions, target: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per-layer style weights: given ones, or 1 / mean(G_target^2).

    With equal weights the caffe-scale VGG19's deep layers dominate by ~4000x
    (relu4_1 Gram errors ~1e6, relu1_1 ~3e2), and colours and fine strokes are
    lost.  Dividing by the target Gram's energy makes each layer's term a
    relative error (about 1 per layer for an unstylised photo), so the layers
    count alike and ``style_weight`` means the same for any style image.
    """
    if opts.style_layer_weights is not None:
        return dict(zip(opts.style_layers, opts.style_layer_weights))
    return {k: 1.0 / max(float(g.pow(2).mean()), 1e-12) for k, g in target.items()}


def _fingerprint(opts: StyleTrainOptions, precision: str, style_sha: str,
                 paths: list[Path]) -> dict[str, str]:
    """The options a checkpoint is only valid for (steps, cadences and device are not)."""
    names = "\n".join(p.relative_to(opts.content).as_posix() for p in paths)
    data = f"{len(paths)} images ({hashlib.sha256(names.encode()).hexdigest()[:12]})"
    keep = ("image_size", "width", "batch_size", "lr", "content_weight", "style_weight", "tv_weight",
            "content_layer", "style_layers", "style_layer_weights", "vgg", "seed")
    fp = {k: str(v) for k, v in asdict(opts).items() if k in keep}
    if opts.width == 32:  # Johnson's: runs checkpointed before the option existed resume
        del fp["width"]
    fp.update(style_size=str(opts.resolved_style_size), style_sha256=style_sha, data=data,
              precision=precision)
    if opts.init is not None:
        fp["init_sha256"] = file_sha256(opts.init)
    return fp


def _step_of(path: Path) -> int:
    return int(_CKPT.fullmatch(path.name).group(1))


def _checkpoints(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if _CKPT.fullmatch(p.name)), key=_step_of)


def _latest_checkpoint(folder: Path) -> Path | None:
    found = _checkpoints(folder)
    return found[-1] if found else None


def _save_checkpoint(folder: Path, step: int, model, optimizer, scaler, fingerprint,
                     elapsed: float, window: _LogWindow) -> None:
    # Only tensors, numbers, strings, lists and dicts: torch.load(weights_only=True) reads it.
    state = {
        "format": "pipeline.train.style/1", "step": step, "elapsed": elapsed,
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(), "fingerprint": dict(fingerprint),
        "log_window": {"sums": list(window.sums), "count": window.count},
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    atomic_write(folder / f"step_{step:07d}.pt", lambda tmp: torch.save(state, tmp))
    for old in _checkpoints(folder)[:-_KEEP_CHECKPOINTS]:
        old.unlink(missing_ok=True)


def _restore(path: Path, fingerprint: dict[str, str], model, optimizer,
             scaler) -> tuple[int, float, _LogWindow]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise JobError(f"cannot read the checkpoint {path} ({exc})", where="train style",
                       hint="delete it to resume from the one before") from None
    old = state.get("fingerprint", {})
    changed = [f"{k} changed (checkpoint: {old.get(k, '?')}, now: {v})"
               for k, v in fingerprint.items() if old.get(k) != v]
    if changed:
        raise JobError(f"cannot resume from {path}: " + "; ".join(changed), where="train style",
                       hint="resume with the original options, or train into a new --out")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng_cpu"])
    if state["rng_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng_cuda"])
    w = state["log_window"]
    return int(state["step"]), float(state["elapsed"]), _LogWindow(list(w["sums"]), int(w["count"]))


def _prepare_log(path: Path, step: int) -> None:
    """Start ``losses.csv``, or drop rows written after the checkpoint we resume from."""
    rows = []
    if step and path.exists():
        with path.open(newline="") as f:
            rows = [r for r in csv.reader(f) if r and r[0].isdigit() and int(r[0]) <= step]
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as f:
            csv.writer(f).writerows([CSV_HEADER, *rows])
    atomic_write(path, write)


def _append_log(path: Path, step: int, values: list[float], seconds: float) -> None:
    with path.open("a", newline="") as f:
        csv.writer(f).writerow([step, *(f"{v:.6g}" for v in values), f"{seconds:.3f}"])


def _write_sample(model, x: torch.Tensor, device, autocast: dict, path: Path,
                  styles: int = 1) -> None:
    """Rows of content | output (one per style), 2 px white gaps, as PNG."""
    ys = []
    for k in range(styles):
        model.set_style(k)
        with torch.no_grad(), torch.autocast(**autocast):
            ys.append(model(x.to(device).float()).float().clamp(0, 255).round()
                      .to(torch.uint8).cpu())
    n, _, s, _ = x.shape
    grid = np.full((n * (s + 2) - 2, (1 + styles) * (s + 2) - 2, 3), 255, np.uint8)
    for i in range(n):
        top = i * (s + 2)
        for j, image in enumerate([x[i], *(y[i] for y in ys)]):
            grid[top:top + s, j * (s + 2):j * (s + 2) + s] = image.permute(1, 2, 0).numpy()
    atomic_write(path, lambda tmp: write_image(grid, tmp, "png"))


def _save_model(model, opts: StyleTrainOptions, style_sha: str, data_size: int,
                precision: str, layer_weights: list[dict[str, float]]) -> None:
    from safetensors.torch import save as safetensors_bytes

    sd = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {
        "architecture": "TransformerNet", "family": "fast_style",
        "paper": "Johnson et al. 2016, Perceptual Losses for Real-Time Style Transfer",
        "style_image": ",".join(p.name for p in opts.styles), "style_sha256": style_sha,
        "styles": str(len(opts.styles)), "width": str(opts.width),
        "style_size": str(opts.resolved_style_size),
        "content_weight": repr(opts.content_weight), "style_weight": repr(opts.style_weight),
        "tv_weight": repr(opts.tv_weight), "content_layer": opts.content_layer,
        "style_layers": ",".join(opts.style_layers),
        "style_layer_weights": ";".join(",".join(f"{w[k]:.6g}" for k in opts.style_layers)
                                        for w in layer_weights),
        "steps": str(opts.steps),
        "image_size": str(opts.image_size), "batch_size": str(opts.batch_size),
        "lr": repr(opts.lr), "data_size": str(data_size), "seed": str(opts.seed),
        "vgg": opts.vgg, "precision": precision, "torch_version": torch.__version__,
    }
    if opts.init is not None:
        meta.update(init=opts.init.name, init_sha256=file_sha256(opts.init))
    # Bytes written by us: safetensors' save_file creates its files 0600, and a model a
    # render box's other users cannot read is no use to them.
    data = safetensors_bytes(sd, meta)
    atomic_write(opts.out, lambda tmp: tmp.write_bytes(data))
    if opts.export_pth:
        atomic_write(opts.out.with_suffix(".pth"), lambda tmp: torch.save(sd, tmp))
