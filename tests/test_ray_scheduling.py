"""The Ray driver's scheduling state, alone: no Ray, no work (``backends/scheduling.py``)."""
from __future__ import annotations

from pathlib import Path, PurePath

import pytest

from pipeline.backends.scheduling import Dispatch
from pipeline.job.plan import Unit


def _units(images: int, clips: int) -> list[Unit]:
    return ([Unit(Path(f"i{n}.png"), PurePath(f"i{n}.png"), 0, "image") for n in range(images)]
            + [Unit(Path(f"c{n}.mp4"), PurePath(f"c{n}.mp4"), 1, "video") for n in range(clips)])


def test_clips_first_images_in_chunks_two_calls_per_worker() -> None:
    d = Dispatch(_units(40, 2), images_per_call=16)
    calls = d.assign(["a", "b"])
    assert [len(c.units) for c in calls] == [1, 1, 16, 16]  # 2 clips, then chunks of 16
    assert [len(chunk) for chunk in d.todo] == [8]
    assert [c.units[0].kind for c in calls[:2]] == ["video", "video"]
    assert sorted(c.worker for c in calls) == ["a", "a", "b", "b"]
    assert d.assign(["a", "b"]) == [] and d.busy
    d.ended(calls[0], worker_died=False)
    again = d.assign(["a", "b"])
    assert len(again) == 1 and again[0].worker == calls[0].worker and len(again[0].units) == 8
    for call in calls[1:] + again:
        d.ended(call, worker_died=False)
    assert not d.busy and not d.todo


def test_a_dead_workers_units_come_back_alone_and_fail_after_two_deaths() -> None:
    d = Dispatch(_units(5, 0), images_per_call=16)
    (call,) = d.assign(["a"])
    call.started = True
    call.finished = {"i0.png", "i1.png"}  # recorded before the death: not redone
    assert d.ended(call, worker_died=True) == []
    assert [[u.key for u in chunk] for chunk in d.todo] == [["i4.png"], ["i3.png"], ["i2.png"]]
    calls = d.assign(["b"])
    assert [c.units[0].key for c in calls] == ["i4.png", "i3.png"]
    calls[0].started = True
    failed = d.ended(calls[0], worker_died=True)
    assert [(u.key, n) for u, n in failed] == [("i4.png", 2)]  # it killed two workers: failed


def test_images_per_call_four_calls_a_worker_within_bounds() -> None:
    assert [len(c) for c in Dispatch(_units(300, 0), workers=1).todo] == [75, 75, 75, 75]
    assert [len(c) for c in Dispatch(_units(300, 0), workers=2).todo][:2] == [38, 38]
    assert {len(c) for c in Dispatch(_units(40, 0), workers=4).todo} == {16, 8}  # at least 16
    assert max(len(c) for c in Dispatch(_units(5000, 0), workers=1).todo) == 256


def test_a_unit_handed_to_a_worker_already_gone_is_not_blamed() -> None:
    d = Dispatch(_units(0, 1))
    for _ in range(5):  # the call never started: each time it comes back, never failed
        (call,) = d.assign(["gone"])
        assert d.ended(call, worker_died=True) == []
    assert d.deaths["c0.mp4"] == 0 and len(d.todo) == 1


def test_actor_shape_per_gpu_per_node_or_per_cpu() -> None:
    from pipeline.backends.ray_driver import actor_shape

    nodes = [{"Alive": True, "Resources": {"CPU": 8.0, "GPU": 2.0}},
             {"Alive": True, "Resources": {"CPU": 8.0, "GPU": 2.0}},
             {"Alive": False, "Resources": {"CPU": 64.0}},
             {"Alive": True, "Resources": {}}]  # a head node with no CPUs for work
    assert actor_shape(nodes, use_gpus=True, workers=None) == (4, 1)
    assert actor_shape(nodes, use_gpus=False, workers=None, clips=True) == (2, 8)
    assert actor_shape(nodes, use_gpus=False, workers=None, clips=False) == (16, 1)
    assert actor_shape(nodes, use_gpus=False, workers=4) == (4, 4)
    assert actor_shape(nodes, use_gpus=False, workers=40) == (40, 1)


def test_a_workers_own_error_is_what_the_driver_reports() -> None:
    from pipeline.backends.ray_driver import _first_line
    from pipeline.errors import WeightsError

    class Wrapped(Exception):  # as Ray's RayTaskError: a traceback first, the error as .cause
        def __init__(self, cause: BaseException) -> None:
            super().__init__("ray::StageWorker.__init__() (pid=1, ip=10.0.0.2)\n  File ...")
            self.cause = cause

    assert _first_line(Wrapped(WeightsError("/w.pth", "weights file not found"))) == \
        "/w.pth: weights file not found"
    assert _first_line(RuntimeError("one\ntwo")) == "one"


class _Passes:
    """A re-iterable list of units that counts how many each pass has handed out."""

    def __init__(self, units: list[Unit]) -> None:
        self.units, self.taken = units, []

    def __iter__(self):
        self.taken.append(0)
        for unit in self.units:
            self.taken[-1] += 1
            yield unit


def test_images_are_taken_as_calls_need_them_not_all_at_once() -> None:
    units = _Passes(_units(1000, 1))
    d = Dispatch(units, images_per_call=16)
    calls = d.assign(["a"])  # the clip and one chunk: two calls a worker
    assert [len(c.units) for c in calls] == [1, 16]
    assert units.taken[:2] == [1001, 1001] and units.taken[2] == 16  # two passes to plan, then 16
    assert sum(len(chunk) for chunk in d.todo) == 1000 - 16  # the rest, made only when asked


def test_ray_client_addresses_in_the_docs_come_with_the_extra() -> None:
    """Issue 28 item 13: the docs show ``--ray ray://head:10001``, which needs Ray Client
    (``ray[client]``: grpcio); the [ray] extra brings it."""
    import importlib.util
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    from tests.conftest import REPO

    docs = (REPO / "README.md").read_text() + "".join(p.read_text() for p in (REPO / "docs").glob("*.md"))
    assert "ray://" in docs
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["ray"]
    assert any(req.startswith("ray[client]") for req in extra), extra
    if importlib.util.find_spec("ray") is not None:  # installed with the extra: its client too
        assert importlib.util.find_spec("grpc") is not None


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1", "nocolon", "127.0.0.1:HTTP"])
def test_a_wrong_ray_address_fails_fast_with_exit_2(tmp_path, address) -> None:
    """Issue 28 item 5: a wrong address gave minutes of Ray's own retry warnings.  It is
    checked first, within --ray-timeout, and the run exits 2 naming it."""
    import time

    from tests.conftest import make_photos, run_cli_here, write_job

    make_photos(tmp_path / "in", 1)
    job = write_job(tmp_path, "sources: [{images: in/}]\noutput: out\nstages: [decode, encode]\n")
    start = time.monotonic()
    done = run_cli_here(str(job), "--ray", address, "--ray-timeout", "1.5")
    assert time.monotonic() - start < 15  # Ray itself retried for minutes
    assert done.returncode == 2, done.stderr
    assert f"'{address}'" in done.stderr and ("ray start --head" in done.stderr or "host:port" in done.stderr)


def test_an_address_that_answers_but_not_as_ray_is_refused() -> None:
    """The check speaks gRPC's opening (an HTTP/2 preface): a port that answers otherwise
    (a web server, a database) is not taken for a cluster."""
    import socket
    import threading

    from pipeline.backends.ray_driver import RayUnavailable, check_reachable

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def answer() -> None:
        conn, _ = server.accept()
        conn.recv(64)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    with pytest.raises(RayUnavailable, match="something answered, but not Ray"):
        check_reachable(f"127.0.0.1:{port}", 2.0)
    server.close()
