"""Tiny media and weights made on the fly; tests never read ../shared."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _onnx_cache(tmp_path_factory) -> None:
    """fast_style's ONNX Runtime exports go to a folder of the test session's, not ~/.cache
    (subprocesses inherit it)."""
    os.environ["STYLIZE_CACHE"] = str(tmp_path_factory.mktemp("stylize-cache"))


def natural_image(h: int, w: int, seed: int) -> np.ndarray:
    """Smooth gradients, a disc and mild noise: closer to a photo than pure noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / max(w - 1, 1) * 200 + 30, yy / max(h - 1, 1) * 180 + 40,
                    (xx + yy) / (h + w) * 150 + 60], axis=-1)
    cy, cx, r = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w, min(h, w) / 4
    img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).round().astype(np.uint8)


def make_photos(folder: Path, n: int, size=(24, 32), seed: int = 0, ext: str = "png",
                subdirs: int = 1) -> list[Path]:
    """``n`` small images spread over ``subdirs`` sub-folders."""
    paths = []
    for i in range(n):
        sub = folder / (f"set{i % subdirs}" if subdirs > 1 else "")
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"img{i:03d}.{ext}"
        Image.fromarray(natural_image(*size, seed=seed + i)).save(path)
        paths.append(path)
    return paths


def draw_tree(folder: Path, images: dict[str, tuple[int, int]],
              files: dict[str, bytes] | None = None) -> Path:
    """Images ``{relative path: (width, height)}`` (seeded by their order) and other files
    ``{relative path: bytes}`` under ``folder``, folders made as needed."""
    for i, (name, (w, h)) in enumerate(images.items()):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(natural_image(h, w, seed=i)).save(folder / name)
    for name, data in (files or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def lively_transformer_net(seed: int = 0):
    """A random TransformerNet whose output spans 0..255 (a fresh one is near 0)."""
    from pipeline.models.transformer_net import TransformerNet

    torch.manual_seed(seed)
    net = TransformerNet().eval()
    with torch.no_grad():
        net.deconv3.conv2d.weight.mul_(40.0)
        net.deconv3.conv2d.bias.fill_(128.0)
    return net


def write_job(folder: Path, body: str, name: str = "job.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body).lstrip())
    return path


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python run_pipeline.py ...`` as a real subprocess."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, str(REPO / "run_pipeline.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def style_weights(tmp_path: Path) -> Path:
    path = tmp_path / "weights" / "style.pth"
    path.parent.mkdir()
    torch.save(lively_transformer_net().state_dict(), path)
    return path


def run_cli_here(*args: str) -> subprocess.CompletedProcess:
    """``run_pipeline.py ...`` in this process: the same code path as ``run_cli`` without the
    3 to 4 s a new interpreter spends importing torch.  For runs that need no kill or signal."""
    import contextlib
    import io
    import signal

    from pipeline.cli import main

    out, err = io.StringIO(), io.StringIO()
    sigterm = signal.getsignal(signal.SIGTERM)  # main() installs its own
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(list(args))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    return subprocess.CompletedProcess(["run_pipeline.py", *args], code, out.getvalue(), err.getvalue())


def adain_decoder_file(path: Path, seed: int = 0) -> Path:
    """A random AdaIN decoder saved as ``train arbitrary`` saves one (safetensors with the
    encoder it was trained for), so the ``arbitrary_style`` stage loads it."""
    from safetensors.torch import save_file

    from pipeline.models.adain import AdaINDecoder
    from pipeline.models.checkpoints import ADAIN_ENCODER

    torch.manual_seed(seed)
    sd = {k: v.contiguous() for k, v in AdaINDecoder().state_dict().items()}
    with torch.no_grad():  # outputs about 0.5 +- 0.3, as a trained decoder's [0, 1] would be
        sd["28.weight"] = sd["28.weight"] * 20
        sd["28.bias"] = torch.full_like(sd["28.bias"], 0.5)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(path), metadata={"family": "adain_decoder", "encoder": ADAIN_ENCODER})
    return path


def ghiasi_files(folder: Path, widths=(4, 8, 8), seed: int = 0) -> tuple[Path, Path]:
    """A small random Ghiasi et al. transfer network and a MobileNet style predictor, as
    safetensors, lively enough that each painting (and each drawn style) shows."""
    from safetensors.torch import save_file

    from pipeline.models.magenta import GhiasiTransformer, MobileNetStylePredictor

    torch.manual_seed(seed)
    transformer, predictor = GhiasiTransformer(widths, blocks=2), MobileNetStylePredictor()
    for m in predictor.modules():  # He init: a deep random net whose output still follows its input
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            torch.nn.init.zeros_(m.bias)
    with torch.no_grad():  # scales away from 0, and strong style maps: each style shows
        for name, p in transformer.named_parameters():
            if ".fc_" in name:
                p.mul_(10.0)
            if "fc_gamma" in name and name.endswith("bias"):
                p.add_(1.0)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(transformer.state_dict(), folder / "transfer.safetensors")
    save_file(predictor.state_dict(), folder / "predictor.safetensors")
    return folder / "transfer.safetensors", folder / "predictor.safetensors"
