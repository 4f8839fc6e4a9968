"""The ``variants`` stage (several styles per image) and ``pick:``; labels carried under each."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path, PurePath

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.job.build import prepare
from pipeline.job.options import PickOptions
from pipeline.errors import JobError
from pipeline.record.ledger import Ledger
from pipeline.job.plan import picked
from tests.conftest import (REPO, draw_tree, lively_transformer_net, make_photos, natural_image,
                            run_cli_here, write_job)

# A class-folder tree, YOLO labels beside the images, a COCO json at the top.
IMAGES = {"train/cat/img1.jpg": (40, 30), "train/cat/img2.png": (31, 23),
          "train/dog/img3.png": (33, 21), "val/dog/img4.png": (24, 36)}
LABELS = {"train/cat/img1.txt": b"0 0.5 0.5 0.2 0.3\n", "train/cat/img2.txt": b"0 0.1 0.1 0.2 0.2\n",
          "train/dog/img3.txt": b"1 0.1 0.2 0.3 0.4\n", "val/dog/img4.txt": b"",
          "annotations.json": b'{"images": [], "annotations": [], "categories": []}'}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("variants")
    draw_tree(root / "data", IMAGES, LABELS)
    torch.save(lively_transformer_net(1).state_dict(), root / "a.pth")
    torch.save(lively_transformer_net(2).state_dict(), root / "b.pth")
    broken = lively_transformer_net(3).state_dict()
    broken["conv1.conv2d.weight"].mul_(1e38)  # finite weights, NaN outputs: every image fails
    # in this branch, at run time
    torch.save(broken, root / "nan.pth")
    return root


def _job(root: Path, name: str, branches: str, extra: str = "", sidecars: str = '["*.txt", "*.json"]',
         sources: str = "data/") -> Path:
    return write_job(root, f"""
        sources:
          - images: {sources}
            sidecars: {sidecars}
        output: {name}
        {extra}
        stages:
          - decode
          - resize: {{short_side: 16}}
          - variants:
{branches}
          - encode: {{image: {{format: png, size: source}}}}
        """, name=f"{name}.yaml")


TWO = """\
              starry: [{fast_style: {weights: a.pth}}]
              scream: [{fast_style: {weights: b.pth}}, {tv_denoise: {weight: 0.05}}]"""


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def _manifest(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


def test_two_variants_keep_sizes_and_carry_labels_under_each(tree: Path) -> None:
    result = run_cli_here("run", str(_job(tree, "out2", TWO)))
    assert result.returncode == 0, result.stderr
    out = _files(tree / "out2")
    expected = {f"{v}/{PurePath(n).with_suffix('.png')}" for v in ("starry", "scream") for n in IMAGES}
    carried = {f"{v}/{n}" for v in ("starry", "scream") for n in LABELS}
    assert set(out) == expected | carried | {"manifest.jsonl"}
    for name in carried:  # byte for byte
        assert out[name] == LABELS[name.split("/", 1)[1]]
    for name in expected:  # every image once per variant, at its source's size
        source = next(n for n in IMAGES if PurePath(n).with_suffix(".png").as_posix() ==
                      name.split("/", 1)[1])
        assert Image.open(tree / "out2" / name).size == IMAGES[source]
    manifest = _manifest(tree / "out2")
    assert {m["output"] for m in manifest} == expected  # exactly the images on disk
    for m in manifest:
        assert m["variant"] == m["output"].split("/")[0]
        assert (m["width"], m["height"]) == IMAGES[PurePath(m["source"]).relative_to("data").as_posix()]
    chains = {m["variant"]: m["chain"] for m in manifest}
    assert len(set(chains.values())) == 2  # each variant's own chain
    # The two styles differ
    a = np.asarray(Image.open(tree / "out2/starry/train/cat/img2.png"))
    b = np.asarray(Image.open(tree / "out2/scream/train/cat/img2.png"))
    assert np.abs(a.astype(int) - b).mean() > 5


def test_a_variant_is_the_same_chain_as_a_job_without_variants(tree: Path) -> None:
    """Each variant's outputs are byte for byte those of a plain job with its chain."""
    run_cli_here("run", str(_job(tree, "out2", TWO)))  # (done already if the test above ran)
    plain = write_job(tree, """
        sources: [{images: data/}]
        output: plain_scream
        stages:
          - decode
          - resize: {short_side: 16}
          - fast_style: {weights: b.pth}
          - tv_denoise: {weight: 0.05}
          - encode: {image: {format: png, size: source}}
        """, name="plain_scream.yaml")
    assert run_cli_here("run", str(plain)).returncode == 0
    alone = _files(tree / "plain_scream")
    fanned = {k.split("/", 1)[1]: v for k, v in _files(tree / "out2").items()
              if k.startswith("scream/") and k.endswith(".png")}
    assert fanned == {k: v for k, v in alone.items() if k.endswith(".png")}
    chains = {m["variant"]: m["chain"] for m in _manifest(tree / "out2")}
    assert chains["scream"] == _manifest(tree / "plain_scream")[0]["chain"]


def test_an_image_is_decoded_once_for_all_its_variants(tree: Path, monkeypatch) -> None:
    from pipeline.engine import run_units
    from pipeline.sources.images import ImageFiles

    reads: list[Path] = []
    original = ImageFiles.read
    monkeypatch.setattr(ImageFiles, "read", lambda self, path: reads.append(path) or original(self, path))
    p = prepare(_job(tree, "once", TWO))
    ledger = Ledger(p.job.output, p.fingerprint)
    try:
        summary = run_units(p.stages, p.ctx, ledger, [u for u in p.plan.units if u.kind == "image"],
                            workers=1)
    finally:
        ledger.close()
    assert summary.done == 2 * len(IMAGES) and not summary.failures
    assert sorted(reads) == sorted(tree / "data" / n for n in IMAGES)  # once each


def test_a_failing_variant_fails_alone_and_its_rerun_redoes_only_it(tree: Path) -> None:
    branches = """\
              good: [{fast_style: {weights: a.pth}}]
              broken: [{fast_style: {weights: nan.pth}}]"""
    job = _job(tree, "outf", branches)
    report = tree / "failing.json"
    first = run_cli_here("run", str(job), "--report", str(report))
    assert first.returncode == 1
    assert "(variant broken) [fast_style]" in first.stderr and "NaN" in first.stderr
    files = _files(tree / "outf")
    assert {k for k in files if k.endswith(".png")} == \
        {f"good/{PurePath(n).with_suffix('.png')}" for n in IMAGES}
    failures = json.loads(report.read_text())["failures"]
    assert sorted((Path(f["source"]).name, f["variant"], f["stage"]) for f in failures) == \
        sorted((Path(n).name, "broken", "fast_style") for n in IMAGES)
    second = run_cli_here("run", str(job))
    assert second.returncode == 1
    assert f"skipped {2 * len(IMAGES) + 2 * len(LABELS)} " not in second.stderr
    assert f"done 0, skipped {len(IMAGES) + 2 * len(LABELS)} (already done), failed {len(IMAGES)}" \
        in second.stderr


def test_a_bad_image_fails_once_per_variant_and_the_rest_is_done(tmp_path: Path, tree: Path) -> None:
    make_photos(tmp_path / "data", 3)
    (tmp_path / "data" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    for name in ("a.pth", "b.pth"):
        (tmp_path / name).write_bytes((tree / name).read_bytes())
    result = run_cli_here("run", str(_job(tmp_path, "out", TWO, sidecars="[]")))
    assert result.returncode == 1
    assert result.stderr.count("bad.png (variant") == 2
    assert len([k for k in _files(tmp_path / "out") if k.endswith(".png")]) == 2 * 3


def test_strength_blends_the_branch_with_its_input(tree: Path) -> None:
    branches = """\
              none: []
              full: [{fast_style: {weights: a.pth}}]
              half: {stages: [{fast_style: {weights: a.pth}}], strength: 0.5}
              zero: {stages: [{fast_style: {weights: a.pth}}], strength: 0}"""
    assert run_cli_here("run", str(_job(tree, "outs", branches, sidecars="[]"))).returncode == 0
    name = "train/cat/img2.png"  # a PNG source: no JPEG loss between the chains
    read = lambda v: np.asarray(Image.open(tree / "outs" / v / name)).astype(int)  # noqa: E731
    none, full, half, zero = (read(v) for v in ("none", "full", "half", "zero"))
    assert np.array_equal(zero, none)
    assert np.abs(full - none).mean() > 20
    # the blend is made before the resize back to the source size: close, not exact
    assert np.abs(half - (full + none) / 2).mean() < 3


def test_pick_is_reproducible_per_image_and_survives_a_kill(tmp_path: Path, tree: Path) -> None:
    n = 30
    make_photos(tmp_path / "data", n, size=(72, 96), subdirs=3)
    for name in ("a.pth", "b.pth"):
        (tmp_path / name).write_bytes((tree / name).read_bytes())
    three = TWO + "\n              plain: []"
    extra = "pick: {count: 2, seed: 7}"
    reference = _job(tmp_path, "ref", three, extra, sidecars="[]")
    assert run_cli_here("run", str(reference)).returncode == 0
    ref = _files(tmp_path / "ref")
    images = sorted(p.relative_to(tmp_path / "data").as_posix()
                    for p in (tmp_path / "data").rglob("*.png"))
    # Each image went through the two variants ``picked`` chose from the seed and its key alone
    for rel in images:
        chosen = picked(rel, ("starry", "scream", "plain"), PickOptions(count=2, seed=7))
        assert len(chosen) == 2
        assert {v for v in ("starry", "scream", "plain") if f"{v}/{rel}" in ref} == set(chosen)
    counts = {v: sum(k.startswith(f"{v}/") for k in ref) for v in ("starry", "scream", "plain")}
    assert sum(counts.values()) == 2 * n and min(counts.values()) >= 10  # no variant starved
    by_seed = {seed: [picked(rel, ("starry", "scream", "plain"), PickOptions(2, seed))
                      for rel in images] for seed in (7, 8)}
    assert by_seed[7] != by_seed[8]  # the seed matters

    job = _job(tmp_path, "out", three, extra, sidecars="[]")
    proc = subprocess.Popen([sys.executable, str(REPO / "run_pipeline.py"), str(job), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    ledger = tmp_path / "out" / ".ledger.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if ledger.exists() and ledger.read_text().count('"done"') >= 5:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before the kill"
    partial = [k for k in _files(tmp_path / "out") if k.endswith(".png")]
    assert 5 <= len(partial) < 2 * n
    resumed = run_cli_here("run", str(job))
    assert resumed.returncode == 0, resumed.stderr
    assert _files(tmp_path / "out") == ref  # the same picks, the same bytes, the same manifest


@pytest.mark.parametrize("branches, extra, message, line", [
    ("              a: [decode]", "", "decode cannot be inside a variant", 10),
    ("              a: [{variants: {b: []}}]", "", "variants cannot be inside a variant", 10),
    ("              a: [{fast_stile: {weights: a.pth}}]", "", "unknown stage 'fast_stile'", 10),
    ("              a: {stages: [], strenght: 0.5}", "", "unknown key 'strenght'", 10),
    ("              a: {stages: [], strength: 1.5}", "", "strength must be 0..1", 10),
    ("              a/b: []", "", "is not a folder name", 10),
    ("              a: 3", "", "expected a list of stages", 10),
    ("              a: []", "pick: {count: 2}", "pick.count is 2 but there are 1 variants", 5),
    ("              a: []\n              b: []", "pick: {count: 0}", "count must be at least 1", 5),
])
def test_mistakes_are_located(tree: Path, branches: str, extra: str, message: str, line: int) -> None:
    job = _job(tree, "bad", branches, extra)
    with pytest.raises(JobError) as info:
        prepare(job)
    assert message in str(info.value)
    assert f"bad.yaml:{line}:" in str(info.value)


def test_pick_without_variants_and_two_variants_stages_are_refused(tree: Path) -> None:
    job = write_job(tree, """
        sources: [{images: data/}]
        output: nov
        pick: {count: 1}
        stages: [decode, {resize: {short_side: 16}}]
        """, name="nov.yaml")
    with pytest.raises(JobError, match="no variants stage"):
        prepare(job)
    job = write_job(tree, """
        sources: [{images: data/}]
        output: twice
        stages: [decode, {variants: {a: []}}, {variants: {b: []}}]
        """, name="twice.yaml")
    with pytest.raises(JobError, match="only one variants stage"):
        prepare(job)


def test_a_clip_goes_through_each_variant_as_its_own_chain(tmp_path: Path, monkeypatch) -> None:
    from pipeline.media import video_write
    from tests.clips import make_clip

    # What each encoder was given, frame by frame: the chains' own result; and then the files' bytes
    # (once libx264 wrote other bytes about one run in five: tests/test_encode_determinism.py).
    given: dict[str, list] = {}
    write = video_write.SegmentWriter.write

    def recorded(self, frame, pts, duration):
        planes = [frame] if isinstance(frame, np.ndarray) else [frame.y, frame.u, frame.v]
        given.setdefault(self.path.parent.parent.name + "/" + self.path.parent.name, []).append(
            (pts, duration, [p.copy() for p in planes]))
        return write(self, frame, pts, duration)

    monkeypatch.setattr(video_write.SegmentWriter, "write", recorded)
    (tmp_path / "clips").mkdir()
    make_clip(tmp_path / "clips" / "c.mp4", frames=8)
    fanned = write_job(tmp_path, """
        sources: [{videos: clips/}]
        output: fanned
        stages:
          - decode
          - variants:
              plain: []
              soft: {stages: [{tv_denoise: {weight: 0.2}}], strength: 0.5}
              smooth: [{tv_denoise: {weight: 0.3}}, {temporal_smooth: {strength: 0.5}}]
        """, name="fanned.yaml")
    result = run_cli_here("run", str(fanned))
    assert result.returncode == 0, result.stderr
    alone = write_job(tmp_path, """
        sources: [{videos: clips/}]
        output: alone
        stages: [decode, {tv_denoise: {weight: 0.3}}, {temporal_smooth: {strength: 0.5}}]
        """, name="alone.yaml")
    assert run_cli_here("run", str(alone)).returncode == 0
    out = _files(tmp_path / "fanned")
    assert set(out) == {"plain/c.mp4", "soft/c.mp4", "smooth/c.mp4", "manifest.jsonl"}
    assert len({out["plain/c.mp4"], out["soft/c.mp4"], out["smooth/c.mp4"]}) == 3
    smooth, alone = given["smooth/c.mp4"], given[".segments/c.mp4"]
    assert len(smooth) == len(alone) == 8
    for (pts, duration, planes), (pts2, duration2, planes2) in zip(smooth, alone):
        assert (pts, duration) == (pts2, duration2)
        assert all(np.array_equal(a, b) for a, b in zip(planes, planes2))
    assert out["smooth/c.mp4"] == (tmp_path / "alone" / "c.mp4").read_bytes()


def test_variants_can_be_added_and_removed_but_a_changed_one_is_refused(tmp_path: Path,
                                                                      tree: Path) -> None:
    make_photos(tmp_path / "data", 3)
    (tmp_path / "a.pth").write_bytes((tree / "a.pth").read_bytes())
    one = "              plain: []"
    two = one + "\n              styled: [{fast_style: {weights: a.pth}}]"
    assert run_cli_here("run", str(_job(tmp_path, "out", one, sidecars="[]"))).returncode == 0
    before = _files(tmp_path / "out")
    added = run_cli_here("run", str(_job(tmp_path, "out", two, sidecars="[]")))
    assert added.returncode == 0, added.stderr
    assert "done 3, skipped 3 (already done)" in added.stderr  # plain's kept, styled's made
    assert {k: v for k, v in _files(tmp_path / "out").items() if k.startswith("plain/")} == \
        {k: v for k, v in before.items() if k.startswith("plain/")}
    removed = run_cli_here("run", str(_job(tmp_path, "out", "              styled: "
                                            "[{fast_style: {weights: a.pth}}]", sidecars="[]")))
    assert removed.returncode == 0 and "done 0, skipped 3" in removed.stderr
    changed = "              styled: [{fast_style: {weights: a.pth}}, {tv_denoise: {weight: 0.1}}]"
    refused = run_cli_here("run", str(_job(tmp_path, "out", changed, sidecars="[]")))
    assert refused.returncode == 2
    assert "branches.styled" in refused.stderr and "give a changed variant a new name" in refused.stderr
    # a changed stage before the variants is a change of every variant
    trunk = write_job(tmp_path, """
        sources: [{images: data/}]
        output: out
        stages: [decode, {resize: {short_side: 8}}, {variants: {styled: [{fast_style: {weights: a.pth}}]}},
                 {encode: {image: {format: png, size: source}}}]
        """, name="trunk.yaml")
    assert run_cli_here("run", str(trunk)).returncode == 2


def test_the_example_augment_job_runs_on_the_tree_the_repo_draws(tmp_path: Path) -> None:
    """jobs/augment_dataset.yaml over scripts/make_augment_dataset.py's tree, as the README
    says to run it (in a copy, so nothing is written into the repo)."""
    (tmp_path / "jobs").mkdir()
    (tmp_path / "weights").symlink_to(REPO / "weights")
    job = tmp_path / "jobs" / "augment_dataset.yaml"
    job.write_text((REPO / "jobs" / "augment_dataset.yaml").read_text())
    drawn = subprocess.run([sys.executable, str(REPO / "scripts" / "make_augment_dataset.py"),
                            str(tmp_path / "jobs" / "augment_data")], capture_output=True, text=True)
    assert drawn.returncode == 0, drawn.stderr
    result = run_cli_here("run", str(job))
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out" / "augment"
    data = tmp_path / "jobs" / "augment_data"
    images = sorted(p for p in data.rglob("*") if p.suffix in (".jpg", ".png") and "thumbs" not in p.parts)
    rows = _manifest(out)
    for variant in ("starry", "scream"):
        for image in images:  # at its stored size (one is stored sideways, with its EXIF tag)
            rel = image.relative_to(data).with_suffix(".png")
            written = Image.open(out / variant / "images" / rel)
            assert written.size == Image.open(image).size
            label = image.with_suffix(".txt")
            assert (out / variant / "images" / rel.with_suffix(".txt")).read_bytes() == label.read_bytes()
        assert (out / variant / "images" / "annotations.json").read_bytes() == \
            (data / "annotations.json").read_bytes()
        assert sorted(p.name for p in (out / variant).glob("*.tar")) == \
            ["train-000000.tar", "train-000001.tar"]
    assert len([r for r in rows if r["kind"] == "image"]) == 2 * len(images)
    assert len([r for r in rows if r["kind"] == "shard"]) == 2 * 6


def test_the_estimate_times_each_variants_chain(tree: Path) -> None:
    from pipeline.job.estimate import estimate

    branches = """\
              plain: []
              styled: [{fast_style: {weights: a.pth}}]"""
    e = estimate(prepare(_job(tree, "est", branches, sidecars="[]")))
    one = sum(w * h for w, h in IMAGES.values())
    assert e.pixels == 2 * one  # each image once per variant
    alone = estimate(prepare(_job(tree, "est1", "              plain: []", sidecars="[]")))
    assert e.seconds > 2 * alone.seconds  # the styled branch's network is timed, not skipped


def test_with_pick_a_label_goes_where_its_image_went(tree: Path) -> None:
    branches = """\
              left: []
              right: [{tv_denoise: {weight: 0.05}}]"""
    result = run_cli_here("run", str(_job(tree, "outp", branches, "pick: {count: 1, seed: 3}")))
    assert result.returncode == 0, result.stderr
    files = _files(tree / "outp")
    for name in IMAGES:
        png = PurePath(name).with_suffix(".png").as_posix()
        label = PurePath(name).with_suffix(".txt").as_posix()
        went = [v for v in ("left", "right") if f"{v}/{png}" in files]
        assert went == picked(name, ("left", "right"), PickOptions(1, 3))
        assert [v for v in ("left", "right") if f"{v}/{label}" in files] == went
    assert {"left/annotations.json", "right/annotations.json"} <= set(files)  # no image's own
    sides = {picked(name, ("left", "right"), PickOptions(1, 3))[0] for name in IMAGES}
    assert sides == {"left", "right"}  # the seed sends the images both ways: the test can fail


def test_strength_on_a_branch_that_resizes_blends_with_its_resized_input(tree: Path) -> None:
    from pipeline.stages.chain import run_stages
    from pipeline.ops.resize import resize
    from pipeline.stages.variants import chain_for

    branches = "              half: {stages: [{resize: {scale: 0.5}}], strength: 0.25}"
    p = prepare(_job(tree, "resized", branches, sidecars="[]"))
    x = torch.from_numpy(np.stack([natural_image(24, 32, seed=1)])).permute(0, 3, 1, 2).float()
    for dtype in (torch.float32, torch.bfloat16):
        out = run_stages(chain_for(p.stages[2:-1], "half"), x.to(dtype))  # after the trunk
        assert out.shape == (1, 3, 12, 16) and out.dtype == dtype
        styled = resize(x, (12, 16), interpolation="bicubic")  # what the branch made
        given = resize(x, (12, 16), interpolation="bilinear")  # its input, brought to its size
        expected = 0.25 * styled + 0.75 * given
        torch.testing.assert_close(out.float(), expected, rtol=0,
                                   atol=2.0 if dtype == torch.bfloat16 else 1e-3)
