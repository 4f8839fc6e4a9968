"""The Ray backend on a real two-node cluster on this machine (``ray.cluster_utils.Cluster``).

One cluster for the module (about 8 s to start), short health checks so a removed node is
noticed in about a second, HOME in a temporary folder (Ray writes a token under it).  Every
test compares with the same job run in one process: images byte for byte, the clip frame
for frame with its audio, the bad file reported alike.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from tests.clips import audio_duration, decode_all, make_clip  # noqa: E402
from tests.conftest import REPO, lively_transformer_net, make_photos, run_cli_here, write_job  # noqa: E402

SYSTEM_CONFIG = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 300,
                 "health_check_failure_threshold": 3}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from ray.cluster_utils import Cluster

    home = tmp_path_factory.mktemp("ray_home")
    saved = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    c = Cluster(initialize_head=True, head_node_args={  # no CPUs: every actor on a worker node
        "num_cpus": 0, "include_dashboard": False, "_system_config": SYSTEM_CONFIG})
    c.add_node(num_cpus=2)
    c.wait_for_nodes()
    try:
        yield c
    finally:
        c.shutdown()
        if saved is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = saved


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    """Six photos and one broken file, a clip of 12 segments with audio, the weights, a
    generator from noise (three images made on the workers), and the one-process run of the
    job (``ref/``) that every Ray run is compared with."""
    import torch

    from pipeline.models.pytorch_gan import DCGANGenerator

    root = tmp_path_factory.mktemp("ray_media")
    make_photos(root / "photos", 6, subdirs=2)
    (root / "photos" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "clips").mkdir()
    make_clip(root / "clips" / "shot.mp4", frames=72, size=(96, 64), fps=24, audio=True, gop_size=12)
    (root / "weights").mkdir()
    torch.save(lively_transformer_net().state_dict(), root / "weights" / "style.pth")
    torch.manual_seed(0)
    torch.save(DCGANGenerator(8, 16, 3).state_dict(), root / "weights" / "G.pth")
    ref = run_cli_here(str(_job(root, "ref")))
    assert ref.returncode == 1 and "failed 1" in ref.stderr, ref.stderr  # the broken file
    return root


def _job(root: Path, output: str) -> Path:
    return write_job(root, f"""
        sources:
          - images: photos/
          - videos: clips/
          - generate: {{weights: weights/G.pth, count: 3, seed: 1, into: synthetic}}
        output: {output}
        stages:
          - decode
          - fast_style: {{weights: weights/style.pth}}
          - temporal_smooth: {{strength: 0.8}}
          - encode: {{video: {{codec: libx264, crf: 20, preset: ultrafast, segment_seconds: 0.25}},
                     audio: copy}}
        """, name=f"job_{output}.yaml")


def _ledger(folder: Path) -> list[dict]:
    out = []
    for line in (folder / ".ledger.jsonl").read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return out


def _same_as_reference(root: Path, output: str) -> None:
    ref, out = root / "ref", root / output
    images = sorted(p.relative_to(ref) for p in ref.rglob("*.png"))
    assert len(images) == 9 and len([p for p in images if p.parts[0] == "synthetic"]) == 3
    for rel in images:
        assert (out / rel).read_bytes() == (ref / rel).read_bytes(), rel
    a, a_pts = decode_all(ref / "shot.mp4")
    b, b_pts = decode_all(out / "shot.mp4")
    assert a_pts == b_pts and len(a) == 72
    for i, (x, y) in enumerate(zip(a, b)):
        np.testing.assert_array_equal(x, y, err_msg=f"frame {i}")
    assert abs(audio_duration(out / "shot.mp4") - 3.0) < 0.05
    done = [r["done"] for r in _ledger(out) if "done" in r]
    assert sorted(done) == sorted({*map(str, images), "shot.mp4"}), "each unit in the ledger once"
    assert not [p for p in out.rglob("*") if p.name.endswith(".partial")]
    assert not (out / ".segments").exists()


def _failure_lines(stderr: str) -> list[str]:
    return [line.strip() for line in stderr.splitlines() if line.strip().startswith("failed ")]


def _start_driver(root: Path, output: str, address: str, workers: int = 2) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "run_pipeline.py"), str(_job(root, output)),
                             "--quiet", "--ray", address, "--ray-workers", str(workers)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"the run ended before the moment the test waits for:\n{proc.stderr.read()}")
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def _records(folder: Path, kind: str) -> list[dict]:
    path = folder / ".ledger.jsonl"
    return [r for r in _ledger(folder) if kind in r] if path.is_file() else []


def test_same_outputs_and_failures_as_one_machine(cluster, media: Path) -> None:
    result = run_cli_here(str(_job(media, "ray")), "--ray", cluster.address, "--ray-workers", "2")
    assert result.returncode == 1, result.stderr  # the broken file, as in one process
    assert "done 10, skipped 0 (already done), failed 1" in result.stderr
    reference = run_cli_here(str(_job(media, "ref")))  # everything skipped; the failure again
    assert _failure_lines(result.stderr) == _failure_lines(reference.stderr) != []
    assert "per stage: decode" in result.stderr
    _same_as_reference(media, "ray")
    again = run_cli_here(str(_job(media, "ray")), "--ray", cluster.address)
    assert "done 0, skipped 10 (already done), failed 1" in again.stderr, again.stderr


def test_an_actor_killed_mid_clip_resumes_from_its_last_segment(cluster, media: Path) -> None:
    out = media / "killed"
    driver = _start_driver(media, "killed", cluster.address)
    _wait_for(lambda: len(_records(out, "segment")) >= 2, driver)
    committed = len(_records(out, "segment"))
    pids = _pids("ray::StageWorker")
    assert pids, "no actor process found"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    _, stderr = driver.communicate(timeout=240)
    assert driver.returncode == 1, stderr  # the broken file only
    assert "ray: a worker died" in stderr
    segments = [r["index"] for r in _records(out, "segment")]
    assert len(segments) == len(set(segments)) == 12, "no segment was made twice"
    assert segments[:committed] == list(range(committed))
    _same_as_reference(media, "killed")


def _pids(pattern: str) -> list[int]:
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def _ancestors(pid: int) -> set[int]:
    out = set()
    while pid > 1:
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
        out.add(pid)
    return out


def test_a_worker_node_removed_mid_run(cluster, media: Path) -> None:
    cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    out = media / "node_gone"
    driver = _start_driver(media, "node_gone", cluster.address)
    _wait_for(lambda: len(_records(out, "segment")) >= 1, driver)
    # The node whose raylet started the actor busy with the clip (the images are long done).
    busy = set().union(*map(_ancestors, _pids("StageWorker.process")))
    node = next(n for n in cluster.worker_nodes if n.all_processes["raylet"][0].process.pid in busy)
    cluster.remove_node(node)
    _, stderr = driver.communicate(timeout=240)
    assert driver.returncode == 1, stderr
    assert "ray: a worker died" in stderr and "done 10" in stderr, stderr
    _same_as_reference(media, "node_gone")


def test_driver_killed_then_run_again(cluster, media: Path) -> None:
    out = media / "driver_gone"
    driver = _start_driver(media, "driver_gone", cluster.address)
    _wait_for(lambda: len(_records(out, "segment")) >= 3, driver)
    driver.kill()
    driver.wait()
    again = run_cli_here(str(_job(media, "driver_gone")), "--ray", cluster.address,
                         "--ray-workers", "2")
    assert again.returncode == 1, again.stderr
    _same_as_reference(media, "driver_gone")
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in out.rglob("*") if p.is_file()}
    time.sleep(2.0)  # an actor of the killed driver would have written by now
    after = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in out.rglob("*") if p.is_file()}
    assert after == before, "no late writes"


def test_variants_and_shards_on_ray_as_in_one_process(cluster, media: Path) -> None:
    """Each (image, variant) and (shard, variant) is a unit on the cluster as at home: the
    same bytes, the same ledger keys, the same failures (the broken file, per variant)."""
    from tests.test_shards import dataset_shard

    (media / "shards").mkdir(exist_ok=True)
    dataset_shard(media / "shards" / "part-0.tar", 0)

    def job(output: str) -> Path:
        return write_job(media, f"""
            sources:
              - images: photos/
              - shards: shards/part-0.tar
            output: {output}
            stages:
              - decode
              - variants:
                  plain: []
                  styled: [{{fast_style: {{weights: weights/style.pth}}}}]
              - encode: {{image: {{format: png}}}}
            """, name=f"variants_{output}.yaml")

    home = run_cli_here(str(job("v_ref")))
    on_ray = run_cli_here(str(job("v_ray")), "--ray", cluster.address, "--ray-workers", "2")
    assert home.returncode == on_ray.returncode == 1, on_ray.stderr
    assert "done 14, skipped 0 (already done), failed 2" in on_ray.stderr, on_ray.stderr
    assert sorted(_failure_lines(on_ray.stderr)) == sorted(_failure_lines(home.stderr))
    ref, out = media / "v_ref", media / "v_ray"
    files = sorted(p.relative_to(ref) for p in ref.rglob("*") if p.is_file() and
                   not p.name.startswith("."))
    assert len([f for f in files if f.suffix == ".png"]) == 12
    assert [f for f in files if f.suffix == ".tar"] == [Path("plain/part-0.tar"),
                                                         Path("styled/part-0.tar")]
    for rel in files:
        assert (out / rel).read_bytes() == (ref / rel).read_bytes(), rel


def test_style_augment_on_ray_draws_as_in_one_process(cluster, media: Path) -> None:
    """Each image's style comes from (seed, its key) alone: an actor on another node draws
    the one the driver's process would (the same pictures, the same manifest seeds)."""
    import json

    import numpy as np
    from PIL import Image

    from pipeline.media.images import read_image
    from tests.conftest import ghiasi_files

    weights, predictor = ghiasi_files(media / "ghiasi")
    (media / "paintings").mkdir(exist_ok=True)
    for s in range(3):
        Image.fromarray(np.full((32, 32, 3), 60 * s + 20, np.uint8)).save(media / "paintings" / f"{s}.png")

    def job(output: str) -> Path:
        return write_job(media, f"""
            sources:
              - images: photos/
            output: {output}
            stages:
              - decode
              - style_augment: {{paintings: paintings/, seed: 3, weights: {weights}, predictor: {predictor}}}
              - encode: {{image: {{format: png}}}}
            """, name=f"augment_{output}.yaml")

    home = run_cli_here(str(job("a_ref")))
    on_ray = run_cli_here(str(job("a_ray")), "--ray", cluster.address, "--ray-workers", "2")
    assert home.returncode == on_ray.returncode == 1, on_ray.stderr  # the broken file
    ref, out = media / "a_ref", media / "a_ray"
    pictures = sorted(p.relative_to(ref) for p in ref.rglob("*.png"))
    assert len(pictures) == 6
    for rel in pictures:  # another process's threads may round a level the other way
        assert np.abs(read_image(out / rel).astype(int) - read_image(ref / rel).astype(int)).max() <= 1
    seeds = [{r["output"]: r["style_seed"] for r in map(json.loads, (d / "manifest.jsonl").read_text().splitlines())}
             for d in (ref, out)]
    assert seeds[0] == seeds[1] and len(seeds[0]) == 6
