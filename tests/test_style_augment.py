"""style_augment (issue 27 item 4): a style per image from (seed, its key) alone, the same
whatever the batch, order or workers, different between images, resumable byte for byte
after a SIGKILL, per (image, variant) and per shard member."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.errors import JobError
from pipeline.job.build import prepare
from pipeline.machine.context import RunContext
from pipeline.media.images import read_image
from pipeline.stages import get_stage
from pipeline.hashing import draw_seed
from tests.conftest import REPO, ghiasi_files, make_photos, natural_image, run_cli_here, write_job

CPU = RunContext(device=torch.device("cpu"), precision="fp32", batch_size=None)


def _paintings(folder: Path, n: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for s in range(n):
        Image.fromarray(natural_image(64, 72, 20 + s)[:, ::(1 if s % 2 else -1)]).save(folder / f"p{s}.png")
    return folder


def _stage(tmp_path: Path, seed: int = 0, alpha: float = 0.5):
    weights, predictor = ghiasi_files(tmp_path / "net")
    cls = get_stage("style_augment")
    return cls(cls.Params(paintings=_paintings(tmp_path / "paintings"), seed=seed, alpha=alpha,
                          weights=weights, predictor=predictor), CPU)


def _images(n: int, h: int = 40, w: int = 48) -> torch.Tensor:
    return torch.stack([torch.from_numpy(natural_image(h, w, s)).permute(2, 0, 1).float()
                        for s in range(n)])


def test_a_draw_depends_on_the_seed_and_the_key_alone(tmp_path) -> None:
    a, again = _stage(tmp_path), _stage(tmp_path)  # two builds, as two machines would make
    torch.testing.assert_close(a.draw("x/1.png"), again.draw("x/1.png"), atol=0, rtol=0)
    assert not torch.allclose(a.draw("x/1.png"), a.draw("x/2.png"))
    assert not torch.allclose(a.draw("x/1.png"), _stage(tmp_path, seed=1).draw("x/1.png"))
    assert draw_seed(0, "x/1.png") == draw_seed(0, "x/1.png") != draw_seed(0, "x/2.png")
    # batch and order: each image keeps its own style
    x, keys = _images(4), [f"img{i}.png" for i in range(4)]
    batch = a(x, keys)
    reversed_order = a(x.flip(0), keys[::-1]).flip(0)
    one_by_one = torch.cat([a(x[i:i + 1], keys[i:i + 1]) for i in range(4)])
    torch.testing.assert_close(batch, reversed_order, atol=0.1, rtol=0)
    torch.testing.assert_close(batch, one_by_one, atol=0.1, rtol=0)
    with pytest.raises(ValueError, match="needs each image's key"):
        a(x)


def test_two_images_get_two_styles(tmp_path) -> None:
    stage = _stage(tmp_path, alpha=1.0)
    x = _images(1).expand(2, -1, -1, -1)  # the same picture under two names
    y = stage(x, ["a.png", "b.png"])
    assert (y[0] - y[1]).abs().mean() > 2.0
    # the draws follow the paintings: every drawn embedding lies within their spread
    spread = (stage.root.abs().sum(1) * 6 + 1e-6)
    assert ((stage.draw("a.png") - stage.mean).abs() <= spread).all()


def _job(tmp_path: Path, output: str, extra: str = "", n: int = 8) -> Path:
    weights, predictor = ghiasi_files(tmp_path / "net")
    _paintings(tmp_path / "paintings")
    if not (tmp_path / "in").exists():
        make_photos(tmp_path / "in", n, size=(36, 44), subdirs=2)
    return write_job(tmp_path, f"""
sources:
  - images: in/
output: {output}
{extra}
stages:
  - decode
  - style_augment: {{paintings: paintings/, seed: 7, weights: {weights}, predictor: {predictor}}}
  - encode: {{image: {{format: png}}}}
""", name=f"{output}.yaml")


def _outputs(folder: Path) -> dict[str, np.ndarray]:
    return {p.relative_to(folder).as_posix(): read_image(p) for p in sorted(folder.rglob("*.png"))}


def test_workers_and_batches_do_not_change_an_images_style(tmp_path) -> None:
    one = _job(tmp_path, "one", "workers: 1\nbatch_size: 1")
    many = _job(tmp_path, "many", "workers: 2\nbatch_size: 4")
    assert run_cli_here(str(one)).returncode == 0 and run_cli_here(str(many)).returncode == 0
    a, b = _outputs(tmp_path / "one"), _outputs(tmp_path / "many")
    assert len(a) == 8 and a.keys() == b.keys()
    for key in a:  # the same style; a batch's convolutions may round a level differently
        assert np.abs(a[key].astype(int) - b[key].astype(int)).max() <= 1, key
    styles = list(a.values())
    assert np.abs(styles[0].astype(int) - styles[1].astype(int)).mean() > 2  # images differ


def _run(job: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "run_pipeline.py"), str(job), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_a_killed_run_resumes_to_the_same_bytes(tmp_path) -> None:
    """Every run a process of its own, as a user's: a test process's torch state (threads set
    by earlier tests) may sum a convolution in another order than a fresh process does."""
    reference = _job(tmp_path, "ref", "batch_size: 1", n=24)
    assert _run(reference).wait(timeout=300) == 0
    job = _job(tmp_path, "out", "batch_size: 1")
    proc = _run(job)
    ledger, deadline = tmp_path / "out" / ".ledger.jsonl", time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if ledger.exists() and ledger.read_text().count('"done"') >= 3:
            break
        time.sleep(0.01)
    proc.kill()
    proc.communicate(timeout=60)
    done_at_kill = len(list((tmp_path / "out").rglob("*.png")))
    assert 0 < done_at_kill < 24, "the kill came too late (or too early) to test anything"
    resumed = _run(job)
    _, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert f"skipped {done_at_kill}" in stderr
    ref, out = _outputs(tmp_path / "ref"), _outputs(tmp_path / "out")
    assert ref.keys() == out.keys() and len(ref) == 24
    assert all(np.array_equal(ref[k], out[k]) for k in ref)


def test_each_variant_and_each_shard_member_draws_its_own(tmp_path) -> None:
    weights, predictor = ghiasi_files(tmp_path / "net")
    _paintings(tmp_path / "paintings")
    make_photos(tmp_path / "in", 2, size=(32, 40))
    with tarfile.open(tmp_path / "train-000000.tar", "w") as tar:
        for i, key in enumerate(("s1", "s2")):
            buf = io.BytesIO()
            Image.fromarray(natural_image(32, 40, 0)).save(buf, "PNG")  # the same picture twice
            info = tarfile.TarInfo(f"{key}.png")
            info.size = len(buf.getvalue())
            tar.addfile(info, io.BytesIO(buf.getvalue()))
    augment = f"{{style_augment: {{paintings: paintings/, weights: {weights}, predictor: {predictor}, alpha: 1.0}}}}"
    job = write_job(tmp_path, f"""
sources:
  - images: in/
  - shards: train-000000.tar
output: out
stages:
  - decode
  - variants:
      a: [{augment}]
      b: [{augment}]
  - encode: {{image: {{format: png}}}}
""")
    done = run_cli_here(str(job))
    assert done.returncode == 0, done.stderr
    a, b = (read_image(tmp_path / "out" / v / "img000.png").astype(int) for v in ("a", "b"))
    assert np.abs(a - b).mean() > 2  # one image, two variants, two styles
    with tarfile.open(tmp_path / "out" / "a" / "train-000000.tar") as tar:
        members = [np.asarray(Image.open(tar.extractfile(m))).astype(int) for m in tar.getmembers()
                   if m.name.endswith(".png")]
    assert len(members) == 2 and np.abs(members[0] - members[1]).mean() > 2
    import json
    rows = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    shard_rows = [r for r in rows if r["kind"] == "shard"]
    assert len(shard_rows) == 4 and all(  # the draw's name: the shard's output path and the member
        r["style_seed"] == draw_seed(0, f"{r['output']}/{r['source_member']}") for r in shard_rows)
    assert all(r["style_seed"] == draw_seed(0, r["output"]) for r in rows if r["kind"] == "image")


def test_an_empty_paintings_folder_is_a_located_error(tmp_path) -> None:
    weights, predictor = ghiasi_files(tmp_path / "net")
    (tmp_path / "paintings").mkdir()
    make_photos(tmp_path / "in", 1)
    job = write_job(tmp_path, f"""
sources: [{{images: in/}}]
output: out
stages:
  - decode
  - style_augment: {{paintings: paintings/, weights: {weights}, predictor: {predictor}}}
  - encode
""")
    with pytest.raises(JobError, match=r"job.yaml:\d+:\d+: stages\[1\] \(style_augment\).*holds no painting"):
        prepare(job)


def test_the_manifest_records_each_outputs_draw(tmp_path) -> None:
    import csv
    import json

    job = _job(tmp_path, "out", "manifest: {csv: true}", n=3)
    assert run_cli_here(str(job)).returncode == 0
    rows = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    assert [r["style_seed"] for r in rows] == [draw_seed(7, r["output"]) for r in rows]
    with open(tmp_path / "out" / "manifest.csv", newline="") as f:
        assert [int(r["style_seed"]) for r in csv.DictReader(f)] == [r["style_seed"] for r in rows]


def _styleaug_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """style-augmentation's three files, as it saves them (random weights, small statistics)."""
    from pipeline.models.inception_predictor import InceptionStylePredictor
    from tests.test_magenta import _styleaug_state_dict

    torch.manual_seed(0)
    predictor = {k: v for k, v in InceptionStylePredictor().state_dict().items()}
    torch.save({"state_dict_ghiasi": _styleaug_state_dict()}, tmp_path / "checkpoint_transformer.pth")
    torch.save({"state_dict_stylepredictor": predictor}, tmp_path / "checkpoint_stylepredictor.pth")
    g = torch.Generator().manual_seed(1)
    a = torch.randn(100, 100, generator=g, dtype=torch.float64) * 0.1
    torch.save({"pbn_embedding_mean": torch.randn(100, generator=g),
                "pbn_embedding_covariance": a @ a.T + 0.01 * torch.eye(100, dtype=torch.float64),
                "imagenet_embedding_mean": torch.randn(100, generator=g, dtype=torch.float64)},
               tmp_path / "checkpoint_embeddings.pth")
    return (tmp_path / "checkpoint_transformer.pth", tmp_path / "checkpoint_stylepredictor.pth",
            tmp_path / "checkpoint_embeddings.pth")


def test_published_statistics_with_styleaugs_own_networks(tmp_path) -> None:
    weights, predictor, statistics = _styleaug_files(tmp_path)
    cls = get_stage("style_augment")
    stage = cls(cls.Params(statistics=statistics, weights=weights, seed=4), CPU)  # predictor beside
    stats = torch.load(statistics, weights_only=True)
    draws = torch.stack([stage.draw(f"img{i}.png") for i in range(3000)])
    mean = stats["pbn_embedding_mean"].double()
    assert (draws.mean(0) - mean).abs().max() < 0.1  # 3000 draws: the mean within about 3 sigma
    cov_error = (torch.cov(draws.T) - stats["pbn_embedding_covariance"]).abs().max()
    assert cov_error < 0.25 * stats["pbn_embedding_covariance"].diagonal().max()
    y = stage(_images(2, 64, 64), ["a.png", "b.png"])
    assert y.shape == (2, 3, 64, 64) and (y[0] - y[1]).abs().mean() > 0.5
    assert "statistics checkpoint_embeddings.pth" in stage.describe()


def test_published_statistics_are_refused_with_the_mobilenet_predictor(tmp_path) -> None:
    _, _, statistics = _styleaug_files(tmp_path)
    weights, predictor = ghiasi_files(tmp_path / "net")
    cls = get_stage("style_augment")
    with pytest.raises(Exception, match="Inception predictor.*Mahalanobis") as err:
        cls(cls.Params(statistics=statistics, weights=weights, predictor=predictor), CPU)
    assert "paintings: FOLDER" in str(err.value)
    with pytest.raises(ValueError, match="one of them"):
        cls.Params(statistics=statistics, paintings=tmp_path)
    with pytest.raises(ValueError, match="one of them"):
        cls.Params()


@pytest.mark.parametrize("stage", ["arbitrary_style", "style_augment"])
def test_a_video_job_with_temporal_smoothing(tmp_path, stage) -> None:
    """As for any style stage; style_augment draws once per clip (its key), so a clip keeps
    one style from frame to frame."""
    from tests.clips import decode_all, make_clip

    weights, predictor = ghiasi_files(tmp_path / "net")
    _paintings(tmp_path / "paintings")
    (tmp_path / "clips").mkdir()
    clip = make_clip(tmp_path / "clips" / "c.mp4", frames=6, size=(48, 32), audio=False)
    style = "style: paintings/p1.png" if stage == "arbitrary_style" else "paintings: paintings/"
    job = write_job(tmp_path, f"""
sources: [{{videos: clips/}}]
output: out
stages:
  - decode
  - {stage}: {{weights: {weights}, predictor: {predictor}, {style}}}
  - temporal_smooth: {{strength: 0.7, flow_preset: ultrafast}}
  - encode: {{video: {{codec: libx264, crf: 18}}, audio: none}}
""")
    result = run_cli_here(str(job))
    assert result.returncode == 0, result.stderr
    frames, _ = decode_all(tmp_path / "out" / "c.mp4")
    source, _ = decode_all(clip)
    assert len(frames) == len(source) == 6 and frames[0].shape == source[0].shape
    assert float(np.abs(frames[0].astype(int) - source[0].astype(int)).mean()) > 5  # painted
