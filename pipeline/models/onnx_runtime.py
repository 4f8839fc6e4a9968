"""Our own networks through ONNX Runtime on a CPU: exported once per weights file, then run
without torch.

On this 2-core machine the light Starry Night network took 85 ms a 512x340 picture in ONNX
Runtime against 117 in torch (fp32, 2 threads; outputs within 0.0005 of torch's, before
rounding), and a process that never imports torch starts 1.3 s sooner.  So on a CPU,
``fast_style`` runs its network here when ``onnxruntime`` is installed (``runtime: auto``).

The export needs torch: the first run of a weights file (and style) exports it into the cache
(``STYLIZE_CACHE``, else ``$XDG_CACHE_HOME/stylize-pipeline``, else
``~/.cache/stylize-pipeline``), named by the file's SHA-256, beside a JSON of what the stage
needs to know without loading it (its description, size multiple, memory per pixel).  Later
runs read those two files only.  Written under a temporary name and renamed: two processes
exporting at once each write a whole file.  ONNX Runtime's outputs here do not depend on the
thread count or the batch size (checked: 1, 2 and 3 threads, batches of 1 and 2, the same
bytes), so a run and its resume agree.
"""
from __future__ import annotations

import importlib.util
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..hashing import file_sha256

if TYPE_CHECKING:
    from torch import nn

#: bumped when the export changes what a cached file holds: older files are then not read
EXPORT_VERSION = 1
CACHE_ENV = "STYLIZE_CACHE"


def available() -> bool:
    """Whether ``onnxruntime`` is installed (found, not imported: that costs 0.13 s)."""
    return importlib.util.find_spec("onnxruntime") is not None


def cache_folder() -> Path:
    root = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "stylize-pipeline")
    return Path(root) / "onnx"


@dataclass(frozen=True)
class Exported:
    """An exported network: the ONNX file and what was noted of the network beside it."""

    path: Path
    facts: dict[str, Any]


def _paths(weights: Path, variant: str) -> tuple[Path, Path]:
    stem = f"{file_sha256(weights)[:32]}-{variant}-v{EXPORT_VERSION}"  # OSError: unreadable
    folder = cache_folder()
    return folder / f"{stem}.onnx", folder / f"{stem}.json"


def cached(weights: Path, variant: str) -> Exported | None:
    """The export of ``weights`` (a variant of it, e.g. its style), or None when none is cached
    (or its files do not read: exported again)."""
    try:  # a missing or unreadable weights file: none (loading it then says why, located)
        model, notes = _paths(weights, variant)
        facts = json.loads(notes.read_text())
    except (OSError, ValueError):
        return None
    return Exported(model, facts) if model.is_file() else None


def noted_stage(weights: Path) -> str | None:
    """The stage that runs ``weights`` (``fast_style``), as its cached export noted it: what
    ``stylize`` needs to know without reading the checkpoint (and importing torch); None when
    no export is cached."""
    try:
        stem = f"{file_sha256(weights)[:32]}-"
    except OSError:
        return None
    for notes in sorted(cache_folder().glob(f"{stem}*-v{EXPORT_VERSION}.json")):
        try:
            return json.loads(notes.read_text()).get("runs_in")
        except (OSError, ValueError):
            continue
    return None


def export(net: nn.Module, weights: Path, variant: str, facts: dict[str, Any]) -> Exported:
    """Export ``net`` (frozen, on the CPU, fp32; RGB [N, 3, H, W] in and out, any size) into the
    cache, with ``facts`` beside it.  Imports torch."""
    import warnings

    import torch

    model, notes = _paths(weights, variant)
    model.parent.mkdir(parents=True, exist_ok=True)
    suffix = f".{os.getpid()}.{threading.get_ident()}.part"
    tmp_model, tmp_notes = model.with_name(model.name + suffix), notes.with_name(notes.name + suffix)
    example = torch.rand(1, 3, 64, 64) * 255
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(net, (example,), str(tmp_model), dynamo=False, opset_version=17,
                              input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "n", 2: "h", 3: "w"},
                                            "y": {0: "n", 2: "h", 3: "w"}})
        tmp_notes.write_text(json.dumps(facts))
        os.replace(tmp_model, model)
        os.replace(tmp_notes, notes)
    finally:
        tmp_model.unlink(missing_ok=True)
        tmp_notes.unlink(missing_ok=True)
    return Exported(model, facts)


class OnnxNet:
    """An exported network's session, opened on first use (in the thread that runs it) with
    ``threads`` intra-op threads; ``net(x)``: float32 [N, 3, H, W] -> float32 [N, 3, H, W]."""

    def __init__(self, path: Path, threads: int) -> None:
        self.path, self.threads = path, threads
        self._session = None
        self._lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with self._lock:
            if self._session is None:
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                self._session = ort.InferenceSession(str(self.path), options,
                                                     providers=["CPUExecutionProvider"])
            return self._session.run(None, {"x": np.ascontiguousarray(x, np.float32)})[0]
