"""Issue 30 item 3: a job that only decodes and encodes starts without torch.

Its import was most of such a job's start-up (1.7 s of a 1080p one-frame transcode against
0.2 s for a bare PyAV one).  The stage registry imports a stage's module when a job names it,
the run context resolves the device when a stage computes, and the ways pass frames through
untouched when no stage is there (benchmarks/render_box.py measures the start-up).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.machine.context import cpu_only_torch
from tests.clips import make_clip
from tests.conftest import REPO, make_photos, write_job
from tests.test_shards import dataset_shard

_RUN = ("import sys, runpy\nsys.argv = ['run_pipeline.py'] + sys.argv[1:]\n"
        "try:\n    runpy.run_path('run_pipeline.py', run_name='__main__')\n"
        "except SystemExit as exc:\n    code = exc.code\n"
        "print('exit', code, 'torch', 'torch' in sys.modules)\n")


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, bool, str]:
    """``run_pipeline.py ARGS`` in a process of its own: exit code, whether torch was imported."""
    shown = subprocess.run([sys.executable, "-c", _RUN, *args], capture_output=True, text=True,
                           timeout=180, cwd=REPO, env=env)
    words = shown.stdout.split()
    assert words[-4] == "exit", shown.stdout + shown.stderr
    return int(words[-3]), words[-1] == "True", shown.stderr


def _sources(tmp_path: Path) -> str:
    (tmp_path / "clips").mkdir()
    make_clip(tmp_path / "clips" / "walk.mp4", frames=12, size=(64, 48))
    make_photos(tmp_path / "photos", 3, size=(24, 32))
    dataset_shard(tmp_path / "shards" / "train-0000.tar", seed=1)
    return "sources: [{videos: clips/}, {images: photos/}, {shards: shards/}]\n"


def test_a_job_that_only_decodes_and_encodes_never_imports_torch(tmp_path: Path) -> None:
    """Clips, images and shards, run and resumed; the same job with a stage that computes (a
    resize by 1: a float round trip) imports torch and writes the same images and shards, which
    is what the untouched frames must give."""
    sources = _sources(tmp_path)
    plain = write_job(tmp_path, sources + "output: plain\nstages: [decode, {encode: {video: "
                      "{segment_seconds: 0.25}}}]\n", name="plain.yaml")
    code, torch_loaded, err = _run(str(plain))
    assert code == 0 and not torch_loaded, err
    assert (tmp_path / "plain" / "walk.mp4").stat().st_size > 0
    code, torch_loaded, err = _run(str(plain))  # a rerun: everything skipped, still no torch
    assert code == 0 and not torch_loaded and "skipping" in err, err

    computed = write_job(tmp_path, sources.replace("[{videos: clips/}, ", "[") + (
        "output: computed\nstages: [decode, {resize: {scale: 1, multiple_of: 1}}, encode]\n"),
        name="computed.yaml")
    code, torch_loaded, err = _run(str(computed))
    assert code == 0 and torch_loaded, err
    for name in ("img000.png", "img001.png", "img002.png", "train-0000.tar"):
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "computed" / name).read_bytes()


def test_a_decode_encode_ledger_that_names_a_precision_still_resumes(tmp_path: Path) -> None:
    """Such a chain's fingerprint no longer holds the precision (its bytes never depended on
    it); a ledger written when it did is read as the same job, not refused as a changed one."""
    make_photos(tmp_path / "photos", 2, size=(24, 32))
    job = write_job(tmp_path, "sources: [{images: photos/}]\noutput: out\nstages: [decode, encode]\n")
    assert _run(str(job))[0] == 0
    ledger = tmp_path / "out" / ".ledger.jsonl"
    lines = ledger.read_text().splitlines()
    header = json.loads(lines[0])
    assert "precision" not in header["fingerprint"]
    header["fingerprint"] = {"precision": "fp32", **header["fingerprint"]}  # as written before
    ledger.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    code, _, err = _run(str(job))
    assert code == 0 and "skipping 2 done" in err, err
    changed = {**header, "fingerprint": {**header["fingerprint"], "stages": []}}
    ledger.write_text("\n".join([json.dumps(changed), *lines[1:]]) + "\n")
    code, _, err = _run(str(job))  # a real change is still refused
    assert code == 2 and "the job changed" in err, err


def test_a_clip_smoothed_on_the_cpu_with_no_model_never_imports_torch(tmp_path: Path) -> None:
    """temporal_smooth alone before a yuv420p encoder, on the CPU (``auto`` with this CPU-only
    build of torch, or ``cpu``): the planes are smoothed in numpy and OpenCV, and the video is
    the same bytes as through torch (tests/test_engine.py compares the two paths)."""
    (tmp_path / "clips").mkdir()
    make_clip(tmp_path / "clips" / "walk.mp4", frames=12, size=(64, 48))
    for device in ("cpu", "auto"):
        job = write_job(tmp_path, f"""
            sources: [{{videos: clips/}}]
            output: out_{device}
            device: {device}
            stages: [decode, temporal_smooth, encode]
            """, name=f"{device}.yaml")
        code, torch_loaded, err = _run(str(job))
        # auto asks torch whether there is a GPU, unless it is a CPU-only build (as CI's)
        assert code == 0 and torch_loaded == (device == "auto" and not cpu_only_torch()), err
    assert (tmp_path / "out_cpu" / "walk.mp4").read_bytes() == (tmp_path / "out_auto" / "walk.mp4").read_bytes()


def test_pictures_through_a_style_network_run_in_onnx_runtime_without_torch(
        tmp_path: Path, style_weights: Path) -> None:
    """fast_style on a CPU (``runtime: auto``): the first run exports the network into the
    cache (and imports torch to do it); later runs read only the export and never import
    torch, and write the same bytes.  The pictures are within a level of torch's."""
    make_photos(tmp_path / "photos", 3, size=(40, 52))
    env = {**os.environ, "STYLIZE_CACHE": str(tmp_path / "cache")}

    def stylize(out: str, *more: str) -> tuple[int, bool, str]:
        return _run("stylize", str(tmp_path / "photos"), "--weights", str(style_weights), "-o",
                    str(tmp_path / out), "--device", "cpu", *more, env=env)

    code, torch_loaded, err = stylize("first")
    assert code == 0 and torch_loaded, err
    assert len(list((tmp_path / "cache" / "onnx").glob("*.onnx"))) == 1
    code, torch_loaded, err = stylize("second")
    assert code == 0 and not torch_loaded, err
    names = sorted(p.name for p in (tmp_path / "first").glob("*.png"))
    assert len(names) == 3
    for name in names:
        assert (tmp_path / "first" / name).read_bytes() == (tmp_path / "second" / name).read_bytes()
    header = json.loads((tmp_path / "second" / ".ledger.jsonl").read_text().splitlines()[0])
    assert header["fingerprint"]["stages"][1]["runs_in"] == "onnxruntime"

    torch_job = write_job(tmp_path, f"""
        sources: [{{images: photos/}}]
        output: torch
        device: cpu
        stages: [decode, {{fast_style: {{weights: {style_weights}, runtime: torch}}}}, encode]
        """, name="torch.yaml")
    code, torch_loaded, err = _run(str(torch_job), env=env)
    assert code == 0 and torch_loaded, err
    for name in names:
        a, b = (np.asarray(Image.open(tmp_path / out / name), dtype=int) for out in ("second", "torch"))
        assert np.abs(a - b).max() <= 1


def test_onnx_runtime_gives_the_same_bytes_for_any_thread_count_or_batch(
        tmp_path: Path, style_weights: Path, monkeypatch) -> None:
    """What a resumed or re-batched run relies on: the exported network's outputs do not
    depend on ONNX Runtime's thread count or the batch size."""
    from pipeline.machine.context import RunContext
    from pipeline.models.onnx_runtime import OnnxNet
    from pipeline.stages import get_stage

    monkeypatch.setenv("STYLIZE_CACHE", str(tmp_path / "cache"))
    cls = get_stage("fast_style")
    stage = cls(cls.Params(weights=style_weights), RunContext("cpu", "fp32", None))
    assert stage.onnx is not None and stage.host_arrays
    x = (np.random.default_rng(0).random((3, 3, 36, 44)) * 255).astype(np.float32)
    outs = []
    for threads in (1, 2):
        stage.onnx = OnnxNet(stage.onnx.path, threads)
        outs.append(stage(x))
        outs.append(np.concatenate([stage(x[i:i + 1]) for i in range(len(x))]))
    assert outs[0].shape == x.shape and outs[0].dtype == np.float32
    assert all(np.array_equal(outs[0], out) for out in outs[1:])


def test_a_cache_it_cannot_write_leaves_the_network_in_torch(tmp_path: Path, style_weights: Path,
                                                            monkeypatch) -> None:
    """No job fails at 3 a.m. because the cache folder cannot be written: with ``runtime:
    auto`` the network runs in torch (said in the log); ``runtime: onnxruntime`` is refused,
    naming the weights and what to do."""
    from pipeline.errors import WeightsError
    from pipeline.machine.context import RunContext
    from pipeline.stages import get_stage

    blocked = tmp_path / "a_file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("STYLIZE_CACHE", str(blocked))
    cls = get_stage("fast_style")
    stage = cls(cls.Params(weights=style_weights), RunContext("cpu", "fp32", None))
    assert stage.onnx is None and "runs_in" not in stage.fingerprint()
    x = (np.random.default_rng(0).random((1, 3, 20, 24)) * 255).astype(np.float32)
    import torch

    assert stage(torch.from_numpy(x)).shape == (1, 3, 20, 24)
    with pytest.raises(WeightsError) as refused:
        cls(cls.Params(weights=style_weights, runtime="onnxruntime"), RunContext("cpu", "fp32", None))
    assert str(style_weights) in str(refused.value) and "STYLIZE_CACHE" in refused.value.hint


def test_outputs_made_in_torch_are_not_resumed_in_onnx_runtime_and_the_refusal_says_how(
        tmp_path: Path, style_weights: Path) -> None:
    """A fast_style job begun before ONNX Runtime ran it (its ledger without ``runs_in``) is not
    finished in ONNX Runtime (other bytes): the refusal names ``runtime: torch``, and with it
    the job goes on where it was."""
    make_photos(tmp_path / "photos", 2, size=(24, 32))
    env = {**os.environ, "STYLIZE_CACHE": str(tmp_path / "cache")}
    body = f"sources: [{{images: photos/}}]\noutput: out\ndevice: cpu\nstages: [decode, {{fast_style: {{weights: {style_weights}RUNTIME}}}}, encode]\n"
    job = write_job(tmp_path, body.replace("RUNTIME", ", runtime: torch"))
    assert _run(str(job), env=env)[0] == 0  # made in torch, as before
    job = write_job(tmp_path, body.replace("RUNTIME", ""))  # runtime: auto, as now
    code, _, err = _run(str(job), env=env)
    assert code == 2 and "runs_in" in err and "runtime: torch" in err, err
    job = write_job(tmp_path, body.replace("RUNTIME", ", runtime: torch"))
    code, _, err = _run(str(job), env=env)
    assert code == 0 and "skipping 2 done" in err, err


def test_the_refusal_says_which_runtime_made_the_outputs() -> None:
    """Both ways: outputs made in torch (no ``runs_in``) or in ONNX Runtime; any other change
    too, and no hint."""
    from pipeline.record.fingerprint_changes import runtime_hint

    torch_fp = {"precision": "fp32", "stages": [{"stage": "decode"}, {"stage": "fast_style"}]}
    onnx_fp = {"precision": "fp32", "stages": [{"stage": "decode"},
                                               {"stage": "fast_style", "runs_in": "onnxruntime"}]}
    assert "made in torch" in runtime_hint(torch_fp, onnx_fp) and "runtime: torch" in runtime_hint(torch_fp, onnx_fp)
    assert "made in onnxruntime" in runtime_hint(onnx_fp, torch_fp)
    assert runtime_hint(torch_fp, torch_fp) == ""
    assert runtime_hint(torch_fp, {**onnx_fp, "precision": "bf16"}) == ""
