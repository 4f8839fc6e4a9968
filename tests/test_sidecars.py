"""Sidecar files (labels, annotations) carried with an image tree; exclude patterns."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from pipeline.errors import JobError
from pipeline.sources.walk import matches_any
from tests.conftest import draw_tree, run_cli_here, write_job

IMAGES = {"train/cat/img1.jpg": (40, 30), "train/dog/img2.png": (33, 21), "val/img3.png": (24, 36),
          "train/thumbs/t1.png": (8, 8)}
OTHERS = {"train/cat/img1.txt": b"0 0.5 0.5 0.2 0.3\n", "train/dog/img2.txt": b"1 0.1 0.2 0.3 0.4\n",
          "val/img3.txt": b"", "val/img3.xml": b"<annotation/>", "annotations.json": b'{"images": []}',
          "train/thumbs/t1.txt": b"2 0 0 1 1\n", "README.md": b"# data\n"}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A class-folder tree with YOLO labels beside the images, a COCO json at the top, a
    thumbnails folder to exclude, and one corrupt image."""
    root = tmp_path_factory.mktemp("sidecars")
    draw_tree(root / "data", IMAGES, OTHERS)
    (root / "data" / "train/cat/bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


def _job(root: Path, name: str, sidecars: str, extra: str = "") -> Path:
    return write_job(root, f"""
        sources:
          - images: data/
            sidecars: {sidecars}
            exclude: ["**/thumbs/**"]
        output: {name}
        {extra}
        stages:
          - decode
          - resize: {{short_side: 16}}
          - encode: {{image: {{format: png, size: source}}}}
        """, name=f"{name}.yaml")


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)}


def test_label_files_travel_with_the_tree_byte_for_byte(tree: Path) -> None:
    job = _job(tree, "out", '["*.txt", "*.json"]', "manifest: {csv: true}")
    first = run_cli_here("run", str(job), "--report", str(tree / "report.json"))
    assert first.returncode == 1  # the corrupt image, reported; the rest done
    assert "bad.jpg" in first.stderr
    out = tree / "out"
    images = {n for n in IMAGES if "thumbs" not in n}
    carried = {"train/cat/img1.txt", "train/dog/img2.txt", "val/img3.txt", "annotations.json"}
    written = {str(Path(n).with_suffix(".png")) for n in images}
    assert _files(out) == written | carried | {"manifest.jsonl", "manifest.csv"}
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert {m["output"] for m in manifest} == written  # exactly the images on disk
    with open(out / "manifest.csv", newline="") as f:  # the same rows, when asked
        rows = list(csv.DictReader(f))
    assert [(r["output"], int(r["width"]), r["variant"]) for r in rows] == \
        [(m["output"], m["width"], "") for m in manifest]
    for m in manifest:
        source = Path(m["source"])
        assert not source.is_absolute() and (tree / source).is_file()  # from the job's folder
        assert (m["width"], m["height"]) == IMAGES[source.relative_to("data").as_posix()]
        assert m["variant"] is None and m["kind"] == "image" and len(m["chain"]) == 16
    report = json.loads((tree / "report.json").read_text())
    assert (report["state"], report["exit_code"], report["done"], report["failed"]) == \
        ("finished", 1, len(images) + len(carried), 1)
    assert report["failures"][0]["stage"] == "decode" and "bad.jpg" in report["failures"][0]["source"]
    for name in carried:
        assert (out / name).read_bytes() == OTHERS[name]
    for name in images:
        assert Image.open((out / name).with_suffix(".png")).size == IMAGES[name]
    ledger = [json.loads(line) for line in (out / ".ledger.jsonl").read_text().splitlines()[1:]]
    assert carried <= {r["done"] for r in ledger if "done" in r}  # committed like any output
    sizes = {r["done"]: (r["width"], r["height"]) for r in ledger if "width" in r}
    assert sizes == {str(Path(n).with_suffix(".png")): IMAGES[n] for n in images}  # for the manifest
    (out / "val/img3.txt").unlink()  # deleted by hand: redone, the rest skipped
    again = run_cli_here("run", str(job))
    assert again.returncode == 1 and (out / "val/img3.txt").read_bytes() == b""
    (out / "train/dog/img2.png").unlink()  # and an image: redone, listed once
    assert run_cli_here("run", str(job)).returncode == 1
    assert _files(out) == written | carried | {"manifest.jsonl", "manifest.csv"}
    assert len((out / "manifest.jsonl").read_text().splitlines()) == len(written)


def test_same_stem_carries_what_shares_an_images_name(tree: Path) -> None:
    job = _job(tree, "stem", "same_stem")
    assert run_cli_here("run", str(job)).returncode == 1
    out = tree / "stem"
    assert {n for n in _files(out) if not n.endswith(".png")} == {
        "train/cat/img1.txt", "train/dog/img2.txt", "val/img3.txt", "val/img3.xml", "manifest.jsonl"}


def test_patterns_match_like_gitignore_and_bad_ones_are_refused(tree: Path) -> None:
    from pathlib import PurePath
    assert matches_any(("*.txt",), PurePath("a/b/c.txt")) and matches_any(("*.txt",), PurePath("c.txt"))
    assert matches_any(("**/thumbs/**",), PurePath("x/thumbs/t.png"))
    assert matches_any(("thumbs",), PurePath("x/thumbs/t.png"))
    assert matches_any(("labels/*.json",), PurePath("labels/a.json"))
    assert not matches_any(("labels/*.json",), PurePath("x/labels/a.json"))
    assert not matches_any(("*.txt",), PurePath("a/b/c.txt.bak"))
    bad = write_job(tree, """
        sources:
          - images: data/
            sidecars: ["../secrets/*.txt"]
        output: bad
        stages: [decode, encode]
        """, name="bad.yaml")
    from pipeline.job.config import load_job
    with pytest.raises(JobError, match="relative to the source"):
        load_job(bad)


def test_two_sources_carrying_one_label_to_one_place_make_the_job_invalid(tree: Path) -> None:
    from pipeline.job.build import prepare

    job = write_job(tree, """
        sources:
          - images: data/
            sidecars: ["*.txt"]
            exclude: ["val/*.png", "**/thumbs/**"]
          - images: data/val/
            into: val
            sidecars: same_stem
        output: clash
        stages: [decode, encode]
        """, name="clash.yaml")
    with pytest.raises(JobError, match="would both be written to 'val/img3.txt'"):
        prepare(job)
    ok = job.read_text().replace("into: val\n", "into: val2\n")
    job.write_text(ok)
    kinds = [(u.kind, u.key) for u in prepare(job).plan.units]
    assert ("file", "val2/img3.xml") in kinds and ("file", "val/img3.txt") in kinds
    assert ("image", "val/img3.png") not in kinds and ("image", "val2/img3.png") in kinds
