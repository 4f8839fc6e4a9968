"""Records and the one ledger writer: the work reports, ``Ledger.apply`` writes.

A run whose records are collected (as a Ray actor's are) and applied to a ledger later
makes the same ledger lines, and the same files, as a run that applies them as it goes.
"""
from __future__ import annotations

import json
from pathlib import Path

from pipeline.job.build import prepare
from pipeline.record.commits import Commits, Segment
from pipeline.engine import run_units
from pipeline.record.ledger import Ledger
from pipeline.record.records import Done, Failed, SegmentSaved
from tests.clips import make_clip
from tests.conftest import make_photos, write_job


class Collected(Commits):
    """Files put in place, records kept (nothing resumed): what an actor does, minus Ray."""

    def __init__(self, output: Path) -> None:
        self.records: list = []
        super().__init__(output, self.records.append, tag="attempt1")

    def is_done(self, key: str) -> bool:
        return False

    def segments(self, key: str) -> list[Segment]:
        """A clip's join reads its segments back: those it reported so far."""
        return [Segment.of(self.output, r) for r in self.records
                if isinstance(r, SegmentSaved) and r.key == key]

    def scratches(self, key: str, segment: int) -> list:
        return []


def _lines(ledger_path: Path) -> list[dict]:
    out = []
    for line in ledger_path.read_text().splitlines()[1:]:  # the header has a timestamp
        record = json.loads(line)
        record.pop("at", None)  # a failure's time
        out.append(record)
    return sorted(out, key=json.dumps)


def test_collected_records_make_the_ledger_of_a_direct_run(tmp_path: Path) -> None:
    make_photos(tmp_path / "photos", 3)
    (tmp_path / "photos" / "bad.png").write_bytes(b"not an image")
    (tmp_path / "clips").mkdir()
    make_clip(tmp_path / "clips" / "a.mp4", frames=12, fps=12, audio=True)

    def job(output: str) -> Path:
        return write_job(tmp_path, f"""
            sources: [{{images: photos/}}, {{videos: clips/}}]
            output: {output}
            stages:
              - decode
              - tv_denoise: {{weight: 0.1}}
              - encode: {{video: {{codec: libx264, preset: ultrafast, segment_seconds: 0.25}}}}
            """, name=f"{output}.yaml")

    direct = prepare(job("direct"))
    with_ledger = Ledger(direct.job.output, direct.fingerprint, keys=[u.key for u in direct.plan.units])
    run_units(direct.stages, direct.ctx, with_ledger, direct.plan.units)
    with_ledger.close()

    later = prepare(job("later"))
    collected = Collected(later.job.output)
    run_units(later.stages, later.ctx, collected, later.plan.units)
    kinds = {type(r).__name__ for r in collected.records}
    assert {"Done", "SegmentSaved", "Failed"} <= kinds
    assert sum(isinstance(r, Done) for r in collected.records) == 4
    assert [r.source for r in collected.records if isinstance(r, Failed)] == [
        str(tmp_path / "photos" / "bad.png")]
    ledger = Ledger(later.job.output, later.fingerprint, keys=[u.key for u in later.plan.units])
    for record in collected.records:
        ledger.apply(record)
    ledger.close()

    assert _lines(tmp_path / "later" / ".ledger.jsonl") == _lines(tmp_path / "direct" / ".ledger.jsonl")
    files = lambda root: {p.relative_to(root): p.read_bytes() for p in root.rglob("*")  # noqa: E731
                          if p.is_file() and not p.name.startswith(".ledger")}
    assert files(tmp_path / "later") == files(tmp_path / "direct")  # segments gone, no temporaries



def test_a_restart_removes_the_manifests_before_the_outputs(tmp_path) -> None:
    """Issue 29 item 4: a --restart killed after deleting the outputs left manifest.jsonl
    listing them.  The manifests go first; a killed restart leaves none that lies."""
    from pipeline.record.ledger import Ledger

    out = tmp_path / "out"
    ledger = Ledger(out, {"job": 1}, keys=[])
    ledger.commit("a.png", lambda tmp: Path(tmp).write_bytes(b"x"))
    ledger.close()
    for name in ("manifest.jsonl", "manifest.csv"):
        (out / name).write_text('{"output": "a.png"}\n')
    again = Ledger(out, {"job": 1}, restart=True, keys=[])
    again.close()
    assert not (out / "a.png").exists()
    assert not (out / "manifest.jsonl").exists() and not (out / "manifest.csv").exists()
