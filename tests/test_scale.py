"""What keeps a 1M-file job's memory small (issue 13): the plan holds listings and makes units
as they are iterated, output keys are checked and remembered as 64-bit hashes, and the ledger
is read line by line into them.  The figures are ``benchmarks/dataset_scale.py``'s; these
tests check the behaviour those structures must keep."""
from __future__ import annotations

import gc
from array import array
import json
import warnings
from itertools import groupby
from pathlib import Path, PurePath

import pytest

from pipeline.record import keyset
from pipeline.job import plan as plan_module
from pipeline.media.atomic import partial_name
from pipeline.job.build import prepare
from pipeline.errors import JobError
from pipeline.record.keyset import KeySet, duplicates_of
from pipeline.record.ledger import LEDGER_NAME, Ledger
from pipeline.job.plan import Listing, Unit
from pipeline.record.records import Done
from tests.conftest import write_job

FINGERPRINT = {"stages": [{"stage": "decode"}], "precision": "fp32"}


def test_a_keyset_answers_like_a_set_before_and_after_its_merges(monkeypatch) -> None:
    monkeypatch.setattr(keyset, "MERGE_AT", 4)  # merge every few keys
    keys = KeySet(["a", "b/c"])
    for i in range(11):
        keys.add(f"x/{i}.png", i)
    keys.add("x/3.png", 33)  # the last value added counts, merged or not
    keys.add("a", 7)
    assert "a" in keys and "b/c" in keys and "x/10.png" in keys
    assert "x/11.png" not in keys and "" not in keys
    assert keys.get("x/3.png") == 33 and keys.get("a") == 7 and keys.get("b/c") == keyset.NONE
    assert keys.get("nope") is None
    assert len(keys) == 13


def test_duplicates_of_finds_the_hashes_seen_twice() -> None:
    hashes = array("q", [hash(k) for k in ("a", "b", "a", "c", "c", "c")])
    assert duplicates_of(hashes) == {hash("a"), hash("c")}
    assert duplicates_of(array("q")) == set()


def test_a_listing_keeps_runs_and_gives_back_every_file_in_order(monkeypatch) -> None:
    monkeypatch.setattr(Listing, "RUN", 3)  # a folder of 7 names: three runs
    names = ["a/1.png", "a/2.png", "a/b/x.png", "a/3.png", "a/4.png", "a/5.png", "a/6.png",
             "a/7.png", "top.png"]
    listing = Listing()
    for name in names:
        listing.add(PurePath(name))
    listing.close()
    assert [f"{f}/{n}" if f else n for f, n in listing] == names
    assert len(listing.runs) == 5  # a/ (2), a/b/, a/ (3), a/ (2), the root
    assert sorted(listing.names_in("a")) == [f"{i}.png" for i in range(1, 8)]
    assert listing.has_stem(("a", "6")) and listing.has_stem(("", "top"))
    assert not listing.has_stem(("a", "x")) and not listing.has_stem(("a/b", "1"))


@pytest.fixture(scope="module")
def planned(tmp_path_factory) -> Path:
    """A two-source job over 3 folders of empty files (planning reads names, not pixels),
    with labels beside some images and three variants, each image through two."""
    root = tmp_path_factory.mktemp("scale")
    for folder in ("data/p0", "data/p1", "data/p1/deep", "more"):
        (root / folder).mkdir(parents=True)
    for i in range(60):
        folder = ("data/p0", "data/p1", "data/p1/deep")[i % 3]
        (root / folder / f"img{i:03d}.png").touch()
        if i % 4 == 0:
            (root / folder / f"img{i:03d}.txt").write_text(f"{i}\n")
    (root / "more" / "extra.jpg").touch()
    return write_job(root, """
        sources:
          - images: data/
            sidecars: same_stem
          - images: more/
            into: more
        output: out
        stages:
          - decode
          - variants:
              a: [{tv_denoise: {weight: 0.01}}]
              b: [{tv_denoise: {weight: 0.02}}]
              c: [{tv_denoise: {weight: 0.03}}]
          - encode: {image: {format: png}}
        pick: {count: 2, seed: 5}
        """)


def test_the_plan_holds_no_units_and_makes_the_same_ones_on_every_pass(planned: Path) -> None:
    p = prepare(planned)
    gc.collect()
    with warnings.catch_warnings():  # looking at every object touches torch's deprecated names
        warnings.simplefilter("ignore")
        assert not [o for o in gc.get_objects() if isinstance(o, Unit)]  # none held between passes
    first, second = list(p.plan.units), list(p.plan.units)
    assert first == second and len(p.plan.units) == len(first)
    images = [u for u in first if u.kind == "image"]
    labels = [u for u in first if u.kind == "file"]
    assert len(images) == 61 * 2 and len(labels) == 15 * 2  # each label goes where its image goes
    by_image = {}
    for u in images:
        by_image.setdefault(u.source, []).append(u.variant)
    for u in labels:
        assert u.variant in by_image[u.source.with_suffix(".png")]
    # each image's variants come together (one read serves them), in the job's order
    assert len([s for s, _ in groupby(u.source for u in images)]) == len(by_image)
    assert all(vs == sorted(vs) for vs in by_image.values())
    assert images[-1].key.startswith(("a/more/", "b/more/", "c/more/"))


def test_where_keeps_the_chosen_units_in_order_and_counts_them(planned: Path) -> None:
    units = prepare(planned).plan.units
    every = list(units)
    kept = units.where(lambda u: u.variant != "b")
    assert list(kept) == [u for u in every if u.variant != "b"] and len(kept) == len(list(kept))
    twice = kept.where(lambda u: u.kind == "file")  # a selection of a selection
    assert list(twice) == [u for u in every if u.variant != "b" and u.kind == "file"]
    assert not units.where(lambda u: False) and len(units.where(lambda u: False)) == 0


def test_two_files_written_to_one_place_are_still_found(tmp_path: Path) -> None:
    (tmp_path / "data" / "x").mkdir(parents=True)
    (tmp_path / "data" / "x" / "a.jpg").touch()
    (tmp_path / "data" / "x" / "a.png").touch()  # both become x/a.png
    job = write_job(tmp_path, """
        sources:
          - images: data/
        output: out
        stages: [decode, {encode: {image: {format: png}}}]
        """)
    with pytest.raises(JobError, match=r"a\.png' and '.*a\.jpg' \(sources\[0\]\) would both be "
                                       r"written to 'x/a\.png'"):
        prepare(job)


def test_a_hash_shared_by_two_different_keys_is_no_collision(tmp_path: Path, monkeypatch) -> None:
    """Only keys whose strings are equal collide: a shared 64-bit hash alone is checked."""
    (tmp_path / "data").mkdir()
    for name in ("a.png", "b.png"):
        (tmp_path / "data" / name).touch()
    job = write_job(tmp_path, "sources: [{images: data/}]\noutput: out\nstages: [decode, encode]\n")
    monkeypatch.setattr(plan_module, "duplicates_of", lambda hashes: set(hashes))  # all "shared"
    assert [u.key for u in prepare(job).plan.units] == ["a.png", "b.png"]


def test_a_ledger_read_again_restores_what_it_recorded(tmp_path: Path, monkeypatch) -> None:
    """lhotse's way: the state a ledger built while running, restored into a fresh object."""
    monkeypatch.setattr(keyset, "MERGE_AT", 8)
    out = tmp_path / "out"
    keys = [f"f{i // 10}/img{i}.png" for i in range(40)]
    first = Ledger(out, FINGERPRINT, keys=iter(keys))
    for i, key in enumerate(keys):
        (out / key).parent.mkdir(parents=True, exist_ok=True)
        (out / key).write_bytes(b"x" * i)
        first.apply(Done(key, bytes=i, size=(i + 1, 2 * i + 1) if i % 5 else None))
    first.apply(Done(keys[7], bytes=7, size=(70, 71)))  # redone: its last line counts
    state = {k: (first.is_done(k), first.size_of(k)) for k in keys}
    first.close()
    (out / keys[3]).unlink()  # deleted by hand: redone next time
    torn = partial_name(out / keys[5], "w1")
    torn.write_bytes(b"torn")  # a killed write beside an output: swept
    second = Ledger(out, FINGERPRINT, keys=iter(keys))
    try:
        assert state[keys[7]] == (True, (70, 71)) and state[keys[5]] == (True, None)
        assert {k: (second.is_done(k), second.size_of(k)) for k in keys} == {
            **state, keys[3]: (False, None)}
        assert not second.is_done("f0/img40.png") and not torn.exists()
    finally:
        second.close()
    lines = [json.loads(line) for line in (out / LEDGER_NAME).read_text().splitlines()]
    assert sum("done" in line for line in lines) == 41 and "ledger" in lines[0]


def test_a_keyset_made_in_bulk_keeps_each_keys_last_value() -> None:
    made = KeySet.of([("a", 1), ("b", 2), ("a", 3), ("c", keyset.NONE), ("b", 4), ("a", 5)])
    assert (made.get("a"), made.get("b"), made.get("c"), made.get("d")) == (5, 4, keyset.NONE, None)
    assert len(made) == 3 and len(KeySet.of([])) == 0 and "a" not in KeySet.of([])


def test_among_keeps_the_keys_found_in_both_with_their_values() -> None:
    made = KeySet.of([(f"k{i}", i) for i in range(10_000)])
    both = made.among(f"k{i}" for i in range(-5, 10_000, 3))  # batches of 4096, some absent
    assert len(both) == len(range(1, 10_000, 3))
    assert both.get("k4") == 4 and both.get("k9997") == 9997 and "k3" not in both
    assert len(KeySet().among(["a"])) == 0 and len(made.among([])) == 0
