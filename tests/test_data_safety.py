"""Issue 9: never touch a source, never hang, never lose a record.

Each test reproduces one defect found by the hostile campaign, through the real
CLI where the defect showed there, and fails without its fix.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pipeline.machine.context import RunContext
from pipeline.record.ledger import LEDGER_NAME, Ledger
from pipeline.record.manifest import MANIFEST
from pipeline.stages.base import Stage
from tests.clips import make_clip
from tests.conftest import REPO, make_photos, run_cli_here, write_job


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (hidden ones included) with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def _style_job(folder: Path, weights: Path, source: str, output: str, name: str = "job.yaml",
               extra_source: str = "") -> Path:
    return write_job(folder, f"""
        sources:
          - images: "{source}"
            {extra_source}
        output: "{output}"
        stages:
          - decode
          - fast_style: {{weights: {weights}}}
          - encode: {{image: {{format: png}}}}
        """, name=name)


def _ledger_lines(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / LEDGER_NAME).read_text().splitlines()]


# -- 1. output: a source folder ---------------------------------------------------------------

@pytest.mark.parametrize("output", ["srcA", "srcA/..", "."])
def test_output_that_is_or_holds_a_source_folder_is_refused(tmp_path: Path, style_weights: Path,
                                                            output: str) -> None:
    make_photos(tmp_path / "srcA", 3, subdirs=2)
    (tmp_path / "srcA" / ".mine.png.partial").write_bytes(b"the user's own file")
    before = _tree(tmp_path / "srcA")
    job = _style_job(tmp_path, style_weights, "srcA/", output)
    runs = ([str(job)], [str(job), "--restart"], ["validate", str(job)]) if output == "srcA" else (
        [str(job)],)
    for args in runs:
        result = run_cli_here(*args)
        assert result.returncode == 2, result.stderr
        assert "job.yaml:4:9: output:" in result.stderr and "source folder of sources[0]" in result.stderr
    assert _tree(tmp_path / "srcA") == before
    assert not (tmp_path / "srcA" / LEDGER_NAME).exists()


def test_output_equal_to_the_folder_of_a_file_source_is_refused(tmp_path: Path,
                                                                style_weights: Path) -> None:
    make_photos(tmp_path / "srcA", 1)
    before = _tree(tmp_path / "srcA")
    result = run_cli_here(str(_style_job(tmp_path, style_weights, "srcA/img000.png", "srcA")))
    assert result.returncode == 2 and "source folder" in result.stderr
    assert _tree(tmp_path / "srcA") == before


def test_file_system_root_is_not_an_output(tmp_path: Path, style_weights: Path) -> None:
    make_photos(tmp_path / "photos", 1)
    result = run_cli_here("validate", str(_style_job(tmp_path, style_weights, "photos/", "/")))
    assert result.returncode == 2 and "file system root" in result.stderr
    assert not Path("/", LEDGER_NAME).exists()


# -- 2. a glob that climbs out of its root ------------------------------------------------------

def test_glob_with_dotdot_after_a_wildcard_is_refused(tmp_path: Path, style_weights: Path) -> None:
    make_photos(tmp_path / "gt" / "sub1", 1)
    make_photos(tmp_path / "victim", 1, seed=5)
    job = _style_job(tmp_path, style_weights, "gt/*/../../victim/*.png", "gt")
    before = _tree(tmp_path)
    for args in ([str(job)], [str(job), "--restart"]):
        result = run_cli_here(*args)
        assert result.returncode == 2, result.stderr
        assert "'..' after a wildcard is not allowed" in result.stderr
    assert _tree(tmp_path) == before


def test_restart_deletes_only_safe_recorded_outputs(tmp_path: Path, style_weights: Path) -> None:
    """A ledger is not proof: keys that climb out, follow a symlink out, or whose file is not
    the size recorded are left alone by --restart."""
    make_photos(tmp_path / "photos", 2)
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"precious")
    job = _style_job(tmp_path, style_weights, "photos/", "out")
    assert run_cli_here(str(job)).returncode == 0
    out = tmp_path / "out"
    (out / "link").symlink_to(tmp_path / "photos", target_is_directory=True)
    (out / "notes.txt").write_text("the user's notes")  # not recorded: never ours
    forged = [{"done": "../victim.png", "bytes": 8}, {"done": str(victim), "bytes": 8},
              {"done": "link/img000.png", "bytes": (tmp_path / "photos/img000.png").stat().st_size},
              {"done": "img001.png", "bytes": 1}]  # img001.png is ours but not this size
    with open(out / LEDGER_NAME, "a") as f:
        f.writelines(json.dumps(r) + "\n" for r in forged)
    photos = _tree(tmp_path / "photos")
    result = run_cli_here(str(job), "--restart")
    assert result.returncode == 0, result.stderr
    assert victim.read_bytes() == b"precious"
    assert _tree(tmp_path / "photos") == photos
    assert (out / "notes.txt").read_text() == "the user's notes"


# -- 3. a full disk -------------------------------------------------------------------------------

_FULL_DISK_SCRIPT = """
set -u
mount -t tmpfs -o size=96k tmpfs "$DISK" || exit 99
date +%s%N > "$LOGS/first.start"
timeout 120 "$PY" "$RUN" "$JOB" -q 2> "$LOGS/first.err"; echo $? > "$LOGS/first.rc"
date +%s%N > "$LOGS/first.end"
cp "$DISK/.ledger.jsonl" "$LOGS/first.ledger"
mount -o remount,size=8m "$DISK"
timeout 120 "$PY" "$RUN" "$JOB" -q 2> "$LOGS/second.err"; echo $? > "$LOGS/second.rc"
cp -a "$DISK/." "$LOGS/out"
"""


def _run_on_a_tiny_disk(tmp_path: Path, job: Path, disk: Path) -> Path | None:
    """Runs the job on a 96 KiB tmpfs, then again after growing it; None if no tmpfs here."""
    if shutil.which("unshare") is None:
        return None
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {**os.environ, "DISK": str(disk), "PY": sys.executable, "JOB": str(job),
           "RUN": str(REPO / "run_pipeline.py"), "LOGS": str(logs)}
    # A private mount namespace (as root, or as an unprivileged user mapped to root) lets the
    # test mount a real tmpfs that vanishes with the shell.
    cmd = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "-rm"]
    proc = subprocess.run([*cmd, "sh", "-c", _FULL_DISK_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300)
    if proc.returncode == 99 or not (logs / "first.rc").exists():
        return None
    return logs


def test_full_disk_stops_the_run_keeps_the_ledger_whole_and_a_rerun_finishes(
        tmp_path: Path, style_weights: Path) -> None:
    make_photos(tmp_path / "photos", 40, size=(48, 64), subdirs=4)
    reference = run_cli_here(str(_style_job(tmp_path, style_weights, "photos/", "ref", name="ref.yaml")))
    assert reference.returncode == 0, reference.stderr
    disk = tmp_path / "disk"
    disk.mkdir()
    job = _style_job(tmp_path, style_weights, "photos/", str(disk))
    logs = _run_on_a_tiny_disk(tmp_path, job, disk)
    if logs is None:
        pytest.skip("cannot mount a tmpfs here (no unshare or no mount namespaces)")
    first_err = (logs / "first.err").read_text()
    assert (logs / "first.rc").read_text().strip() == "1", first_err
    nanoseconds = int((logs / "first.end").read_text()) - int((logs / "first.start").read_text())
    assert nanoseconds < 60e9  # stopped, not hung (the interpreter's start included)
    assert "No space left on device" in first_err and "run the same command again" in first_err
    lines = (logs / "first.ledger").read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line parses: no torn line
    committed = [r["done"] for r in records if "done" in r]
    assert 0 < len(committed) < 40  # the disk filled mid-run
    second_err = (logs / "second.err").read_text()
    assert (logs / "second.rc").read_text().strip() == "0", second_err
    assert f"skipped {len(committed)} (already done)" in second_err
    out = _tree(logs / "out")
    assert {k: v for k, v in out.items() if not k.startswith(".")} == {
        k: v for k, v in _tree(tmp_path / "ref").items() if not k.startswith(".")}
    final = [json.loads(line) for line in (logs / "out" / LEDGER_NAME).read_text().splitlines()]
    assert sorted(r["done"] for r in final if "done" in r) == sorted(
        k for k in out if not k.startswith(".") and k != MANIFEST)


class _InjectedDisk:
    """ENOSPC at every write site under ``folder`` once ``room`` bytes are used: the image
    writer's ``open`` and the ledger's ``os.write`` (for machines without mount namespaces,
    and to run the same check in the test process, in seconds)."""

    def __init__(self, folder: Path, room: int) -> None:
        import builtins

        self.folder, self.room, self._fds = str(folder), room, set()
        self._open, self._os_open, self._os_write = builtins.open, os.open, os.write

    def _take(self, n: int) -> None:
        import errno

        if n > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= n

    def install(self, monkeypatch) -> None:
        import pipeline.media.images as images

        disk = self

        class File:
            def __init__(self, f):
                self._f = f

            def write(self, data):
                disk._take(len(data))
                return self._f.write(data)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self._f.close()

        def open_(path, mode="r", *args, **kwargs):
            f = disk._open(path, mode, *args, **kwargs)
            return File(f) if "w" in mode and str(path).startswith(disk.folder) else f

        def os_open(path, flags, *args):
            fd = disk._os_open(path, flags, *args)
            if str(path).startswith(disk.folder):
                disk._fds.add(fd)
            return fd

        def os_write(fd, data):
            if fd in disk._fds:
                disk._take(len(data))
            return disk._os_write(fd, data)

        monkeypatch.setattr(images, "open", open_, raising=False)
        monkeypatch.setattr(os, "open", os_open)
        monkeypatch.setattr(os, "write", os_write)


def test_injected_full_disk_stops_the_run_and_a_rerun_finishes(tmp_path: Path, style_weights: Path,
                                                               monkeypatch) -> None:
    make_photos(tmp_path / "photos", 16, subdirs=2)
    job = _style_job(tmp_path, style_weights, "photos/", "out")
    with monkeypatch.context() as patch:
        _InjectedDisk(tmp_path / "out", room=12_000).install(patch)
        start = time.perf_counter()
        first = run_cli_here(str(job))
        seconds = time.perf_counter() - start
    assert first.returncode == 1, first.stderr
    assert seconds < 30 and "No space left on device" in first.stderr
    assert "stopped early" in first.stderr and "run the same command again" in first.stderr
    committed = [r["done"] for r in _ledger_lines(tmp_path / "out") if "done" in r]  # all parse
    assert 0 < len(committed) < 16
    second = run_cli_here(str(job))
    assert second.returncode == 0 and f"skipped {len(committed)} (already done)" in second.stderr
    done = sorted(r["done"] for r in _ledger_lines(tmp_path / "out") if "done" in r)
    assert len(done) == 16 and all((tmp_path / "out" / k).is_file() for k in done)


def test_torn_last_line_is_cut_before_the_next_record(tmp_path: Path) -> None:
    out = tmp_path / "out"
    ledger = Ledger(out, {"v": 1})
    ledger.commit("a.png", lambda tmp: tmp.write_bytes(b"a"))
    ledger.close()
    with open(out / LEDGER_NAME, "a") as f:
        f.write('{"done": "b.png", "by')  # a kill (or a full disk) mid-line
    ledger = Ledger(out, {"v": 1})  # a fresh object restores what the file says
    assert ledger.is_done("a.png") and not ledger.is_done("b.png")
    ledger.commit("c.png", lambda tmp: tmp.write_bytes(b"c"))
    ledger.close()
    records = _ledger_lines(out)
    assert [r.get("done") for r in records[1:]] == ["a.png", "c.png"]


# -- 5. sweeps and nested output folders ----------------------------------------------------------

def test_nested_output_folders_do_not_touch_each_other(tmp_path: Path, style_weights: Path) -> None:
    make_photos(tmp_path / "a", 6, subdirs=2)
    make_photos(tmp_path / "b", 6, subdirs=2, seed=10)
    outer = _style_job(tmp_path, style_weights, "a/", "out", name="outer.yaml")
    inner = _style_job(tmp_path, style_weights, "b/", "out/inner", name="inner.yaml")
    assert run_cli_here(str(inner)).returncode == 0
    # Another run's work in flight inside the inner folder: the outer run must not sweep it.
    in_flight = [tmp_path / "out/inner/set0/.other.png.partial",
                 tmp_path / "out/inner/.segments/clip.mp4/.00000.mp4.partial"]
    for path in in_flight:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"in flight")
    procs = [subprocess.Popen([sys.executable, str(REPO / "run_pipeline.py"), str(job), "-q"],
                              stderr=subprocess.PIPE, text=True) for job in (outer, inner)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert [rc for rc, _ in results] == [0, 0], results
    assert all(p.read_bytes() == b"in flight" for p in in_flight)
    inner_keys = {r["done"] for r in _ledger_lines(tmp_path / "out/inner") if "done" in r}
    outer_keys = {r["done"] for r in _ledger_lines(tmp_path / "out") if "done" in r}
    assert len(inner_keys) == 6 and len(outer_keys) == 6
    assert all((tmp_path / "out/inner" / k).is_file() for k in inner_keys)


def test_a_job_may_not_write_into_another_jobs_output_folder(tmp_path: Path,
                                                             style_weights: Path) -> None:
    make_photos(tmp_path / "b", 2)
    assert run_cli_here(str(_style_job(tmp_path, style_weights, "b/", "out/inner", name="i.yaml"))
                   ).returncode == 0
    before = _tree(tmp_path / "out")
    make_photos(tmp_path / "a", 2, seed=3)
    result = run_cli_here(str(_style_job(tmp_path, style_weights, "a/", "out", name="o.yaml",
                                    extra_source="into: inner")))
    assert result.returncode == 2 and "the output folder of another job" in result.stderr
    assert _tree(tmp_path / "out") == before


def test_segments_of_a_finished_clip_are_removed_on_the_next_run(tmp_path: Path,
                                                                 style_weights: Path) -> None:
    (tmp_path / "clips").mkdir()
    make_clip(tmp_path / "clips" / "shot.mp4", frames=12, fps=24, audio=False)
    job = write_job(tmp_path, f"""
        sources: [{{videos: clips/}}]
        output: out
        stages:
          - fast_style: {{weights: {style_weights}}}
          - encode: {{video: {{codec: libx264, preset: ultrafast, segment_seconds: 0.25}}}}
        """)
    assert run_cli_here(str(job)).returncode == 0
    # A kill just after the clip's final ledger line, before its segment folder was removed:
    leftover = tmp_path / "out" / ".segments" / "shot.mp4"
    leftover.mkdir(parents=True)
    (leftover / "00000.mp4").write_bytes(b"x" * 1000)
    result = run_cli_here(str(job))
    assert result.returncode == 0 and "skipped 1" in result.stderr
    assert not (tmp_path / "out" / ".segments").exists()


# -- 8. symlink loops -----------------------------------------------------------------------------

@pytest.mark.parametrize("source", ["photos/", "photos/**/*.png"])
def test_symlink_loop_yields_each_real_image_once(tmp_path: Path, style_weights: Path,
                                                  source: str) -> None:
    make_photos(tmp_path / "photos", 4, subdirs=2)
    (tmp_path / "photos" / "set0" / "loop").symlink_to("..", target_is_directory=True)
    (tmp_path / "photos" / "set1" / "self").symlink_to(".", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    make_photos(tmp_path / "elsewhere", 1, seed=7)
    (tmp_path / "photos" / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    result = run_cli_here("validate", str(_style_job(tmp_path, style_weights, source, "out")))
    assert result.returncode == 0, result.stderr
    # the 4 real images; the folder linked from elsewhere is skipped and said (issue 28 item 7:
    # ``follow_links: outside`` takes its image too, tests/test_hostile_inputs.py)
    assert "units     4" in result.stdout, result.stdout
    assert "linked: a link to" in result.stdout and "not followed" in result.stdout


# -- 3b. never hang: a thread that cannot record, or dies, stops the run ------------------------

def _engine_run(tmp_path: Path, stage, ledger: Ledger, n: int = 12,
                  values: list[int] | None = None, batch_size: int = 1):
    """An image run with real threads and files, in a thread of its own so a hang shows;
    image i is flat grey ``values[i]`` (default i * 5)."""
    import threading

    import numpy as np
    from PIL import Image

    from pipeline.engine import Engine
    from pipeline.job.plan import Unit
    from pipeline.stages import get_stage

    ctx = RunContext(device=torch.device("cpu"), precision="fp32", batch_size=batch_size)
    values = values or [i * 5 for i in range(n)]
    units = []
    for i, value in enumerate(values):
        path = tmp_path / "src" / f"{i:02d}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)
        units.append(Unit(source=path, output_rel=Path(f"{i:02d}.png"), source_index=0))
    decode = get_stage("decode")(get_stage("decode").Params(), ctx)
    encode = get_stage("encode")(get_stage("encode").Params(), ctx)
    result = {}
    thread = threading.Thread(target=lambda: result.update(summary=Engine(
        [decode, stage, encode], ctx, ledger, workers=2).run(units)), daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the run hung"
    return result["summary"]


class _Breaks(Stage):
    """A transform stage that fails every image (so each failure is recorded)."""

    name = "breaks"

    def __init__(self) -> None:
        super().__init__(None, RunContext(device=torch.device("cpu"), precision="fp32",
                                          batch_size=1))

    def __call__(self, x):
        raise RuntimeError("this stage breaks")


def test_a_ledger_that_cannot_record_a_failure_stops_the_run(tmp_path: Path) -> None:
    import errno

    ledger = Ledger(tmp_path / "out", {"v": 1})
    real_append, calls = ledger._append, []

    def append(record):
        calls.append(record)
        if "failed" in record:
            raise OSError(errno.EIO, "Input/output error")
        real_append(record)

    ledger._append = append
    try:
        summary = _engine_run(tmp_path, _Breaks(), ledger, n=40)
    finally:
        ledger.close()
    assert summary.fatal and "Input/output error" in summary.fatal
    assert len(calls) < 40  # stopped, not failing unit after unit


def test_a_thread_that_dies_stops_the_run_with_the_reason(tmp_path: Path, monkeypatch) -> None:
    from pipeline.engine import Engine

    def broken_commit(self, key, write):
        raise AssertionError("a bug in the commit path")

    ledger = Ledger(tmp_path / "out", {"v": 1})
    monkeypatch.setattr(Ledger, "commit", broken_commit)
    monkeypatch.setattr(Engine, "fail", lambda *a, **k: (_ for _ in ()).throw(
        RuntimeError("and the failure handler too")))

    class Identity(_Breaks):
        def __call__(self, x):
            return x

    try:
        summary = _engine_run(tmp_path, Identity(), ledger, n=40)  # more than the queues hold
    finally:
        ledger.close()
    assert summary.fatal and "internal error in image-write-" in summary.fatal


# -- 7. broken numbers at run time ----------------------------------------------------------------

class _NanForSome(Stage):
    """Turns images whose first pixel is 7 into NaN (an fp16 overflow, say)."""

    name = "nan_for_some"

    def __init__(self) -> None:
        super().__init__(None, RunContext(device=torch.device("cpu"), precision="fp32",
                                          batch_size=1))

    def __call__(self, x):
        y = x.clone()
        y[x[:, 0, 0, 0] == 7] = float("nan")
        return y


def test_a_stage_that_makes_nan_fails_that_image_alone(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "out", {"v": 1})
    try:  # batches of 4: the batch with NaN in it is retried image by image
        summary = _engine_run(tmp_path, _NanForSome(), ledger, values=[10, 7, 20, 30, 7, 40],
                                batch_size=4)
    finally:
        ledger.close()
    assert summary.done == 4 and not summary.fatal
    assert sorted(f.source.name for f in summary.failures) == ["01.png", "04.png"]
    assert all(f.stage == "nan_for_some" and "NaN or infinite values" in f.reason
               for f in summary.failures)
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == [
        "00.png", "02.png", "03.png", "05.png"]


def test_flat_output_from_broken_weights_fails_and_nothing_is_written(tmp_path: Path) -> None:
    from tests.conftest import lively_transformer_net

    net = lively_transformer_net()
    with torch.no_grad():  # a saturated last layer: every pixel 255 whatever the input
        net.deconv3.conv2d.weight.zero_()
        net.deconv3.conv2d.bias.fill_(300.0)
    weights = tmp_path / "saturated.pth"
    torch.save(net.state_dict(), weights)
    make_photos(tmp_path / "photos", 2)
    result = run_cli_here(str(_style_job(tmp_path, weights, "photos/", "out")))
    assert result.returncode == 1, result.stderr
    assert "done 0" in result.stderr and "failed 2" in result.stderr
    assert "[fast_style]: ValueError: the network turned 1 of 1 images into one flat colour " \
           "(every value 255)" in result.stderr
    assert not list((tmp_path / "out").glob("*.png"))


@pytest.mark.parametrize("sheet", ["photos/img000.png", "photos/sheet.png"])
def test_contact_sheet_may_not_overwrite_or_join_the_sources(tmp_path: Path, style_weights: Path,
                                                             sheet: str) -> None:
    make_photos(tmp_path / "photos", 2)
    job = _style_job(tmp_path, style_weights, "photos/", "out")
    job.write_text(job.read_text() + f"contact_sheet: {{path: {sheet}}}\n")
    before = _tree(tmp_path / "photos")
    result = run_cli_here(str(job))
    assert result.returncode == 2 and "job.yaml:9:16: contact_sheet.path:" in result.stderr
    assert _tree(tmp_path / "photos") == before


def test_an_output_folder_that_cannot_be_made_is_a_located_job_error(tmp_path: Path,
                                                                    style_weights: Path) -> None:
    make_photos(tmp_path / "photos", 1)
    (tmp_path / "taken").write_text("a file where the output folder would go")
    job = _style_job(tmp_path, style_weights, "photos/", "taken/out")
    for args in (["validate", str(job)], [str(job)]):
        result = run_cli_here(*args)
        assert result.returncode == 2, result.stderr
        assert "job.yaml:4:9: output: output" in result.stderr and "is a file, not a folder" in result.stderr
