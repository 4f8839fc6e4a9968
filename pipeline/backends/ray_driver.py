"""The Ray backend's driver: the same job, its units processed by actors across a cluster.

    driver (this process)                                actors (one per GPU, or --ray-workers N)
    prepare the job, hold the ledger and its lock   -->  rebuild the stages from the job file;
    hand out units: image chunks, a clip from its        refuse to run if their fingerprint differs;
    resume point; at most two calls per actor            run the one-machine engine on the units,
    apply each record as it streams back: the     <--    write files in place (temporary names
    only writer of the ledger; progress, summary         unique per attempt), stream records back

Scheduling state (what is queued, what is in flight where, how many times a
unit's worker died) is ``scheduling.Dispatch``, apart from Ray and from the
work, which is the engine's.  A call whose actor died is put back: its images
that had no record yet, its clip from the ledger's last committed segment.  A
dead actor is replaced by a new one, which gets work once it is up (on another
node if its node is gone; a cluster that lost a node finishes on the actors it
has left); a unit whose worker died twice is recorded as failed, not tried for
ever.  Ctrl-C stops handing out work and kills the actors, so nothing is
written after the summary.
"""
from __future__ import annotations

import queue
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..job.build import Prepared, fingerprint_of
from ..job.plan import Unit
from ..machine.progress import Progress
from ..record.ledger import sweep_partials
from ..record.records import Done, Event, Failed, Started, Tally
from ..record.results import Failure, Summary
from ..sources import get_source
from .ray_worker import RUN_FILE, StageWorker
from .scheduling import ALONE, Call, Dispatch


class RayUnavailable(RuntimeError):
    """Ray is not installed, or the cluster cannot be reached."""


def check_reachable(address: str, timeout: float) -> None:
    """A cluster address (``host:port``, ``ray://host:port``) must answer a TCP connection
    within ``timeout`` seconds: ``ray.init`` retries a wrong one for about 14 minutes, and
    Ctrl-C then takes many seconds.  ``local`` and ``auto`` (a cluster of this machine's) are
    left to Ray."""
    import socket

    if address in ("local", "auto"):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise RayUnavailable(f"'{address}' is not a Ray address: give host:port (the head's GCS "
                             "port, 6379 by default), ray://host:10001, 'auto' or 'local'")
    # Ray's GCS and its client server speak gRPC: an HTTP/2 server answers the client's
    # preface with a SETTINGS frame.  A closed port, a host that is down, or a port that
    # something else holds (or a proxy that accepts anything) gives no such answer.
    why = ""
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as conn:
            conn.settimeout(timeout)
            conn.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
            head = conn.recv(9)
            if len(head) < 9 or head[3] != 4:
                why = "something answered, but not Ray (no gRPC)"
    except OSError as exc:
        why = f"nothing answered ({exc.strerror or exc})"
    if why:
        raise RayUnavailable(
            f"cannot reach the Ray cluster at '{address}' within {timeout:g} s: {why}; start "
            "one with `ray start --head` there, check the address (the head's GCS port, 6379 "
            "by default), or give --ray-timeout more seconds")


@dataclass(eq=False)  # hashed by identity: a key of the dispatch's bookkeeping
class _Actor:
    handle: Any
    ready: Any  # the ref of its first describe(): work goes only to actors that are up
    up: bool = False
    dead: bool = False


class RayBackend:
    """Start (or join) Ray, create the actors, check them; then ``run`` the pending units."""

    def __init__(self, prepared: Prepared, address: str, workers: int | None = None,
                 timeout: float = 30.0) -> None:
        check_reachable(address, timeout)  # before Ray, which retries a wrong address for minutes
        try:
            import ray
        except ImportError:
            raise RayUnavailable("--ray needs Ray: pip install -e \".[ray]\"") from None
        self.ray = ray
        job = prepared.job
        try:
            if address == "local":
                ray.init(include_dashboard=False, logging_level="warning", log_to_driver=True)
            else:
                ray.init(address=address, logging_level="warning", log_to_driver=True)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RayUnavailable(f"cannot reach the Ray cluster at '{address}': {exc}") from None
        resources = ray.cluster_resources()
        use_gpus = job.device != "cpu" and resources.get("GPU", 0) >= 1
        clips = any(get_source(spec.kind).way == "video" for spec in job.sources)
        workers, cpus_per_worker = actor_shape(ray.nodes(), use_gpus, workers, clips)
        # Ray's own restarts would queue work on an actor that may never come back (its node
        # gone, no room elsewhere): we replace dead actors ourselves and wait until they are up.
        self._options: dict[str, Any] = {
            "num_cpus": cpus_per_worker, "num_gpus": 1 if use_gpus else 0, "max_restarts": 0,
            "max_task_retries": 0, "scheduling_strategy": "SPREAD",
            # torch's share in the actor is capped at its CPUs (threads.py reads it), and
            # follows the load within that, as on one machine
            "runtime_env": {"env_vars": {"OMP_NUM_THREADS": str(cpus_per_worker)}}}
        self._remote = ray.remote(StageWorker)
        self._args = (str(job.path.resolve()), job.batch_size)
        # The first actor resolves the device and precision where the work runs (a GPU node);
        # the driver passes them, with its batch size, to all the others.
        first = self._new_actor(None)
        described = self._up(first)
        self.precision = described["precision"]
        self.fingerprint = fingerprint_of(prepared.ctx.__class__(
            prepared.ctx.device, self.precision, prepared.ctx.batch_size), prepared.stages,
            prepared.job.sources)
        self.actors = [first] + [self._new_actor(self.precision) for _ in range(workers - 1)]
        for actor in self.actors[1:]:  # all up, and all building the same stages, before any work
            self._check(self._up(actor))
        print(f"ray: {workers} worker{'s' if workers != 1 else ''} of {cpus_per_worker} CPU"
              f"{'s' if cpus_per_worker != 1 else ''}{' and 1 GPU' if use_gpus else ''} each, "
              f"on {described['device']} in {self.precision}", file=sys.stderr, flush=True)

    def _up(self, actor: _Actor) -> dict:
        """Wait for a new actor to build its stages; a failure there ends the run in words."""
        try:
            described = self.ray.get(actor.ready)
        except self.ray.exceptions.RayError as exc:
            self.shutdown()
            raise RayUnavailable(f"a Ray worker could not start: {_first_line(exc)}") from None
        actor.up = True
        return described

    def _new_actor(self, precision: str | None) -> _Actor:
        job_path, batch_size = self._args
        handle = self._remote.options(**self._options).remote(job_path, precision, batch_size)
        return _Actor(handle, handle.describe.remote())

    def _check(self, info: dict) -> None:
        if info["fingerprint"] != self.fingerprint:
            self.shutdown()
            raise RayUnavailable(
                f"a worker on node {info['node'][:12]} builds different stages (another weights "
                "file or precision there): put the same files at the same paths on every node")

    # -- running ------------------------------------------------------------------
    def run(self, ledger, units: Sequence[Unit], progress: Progress) -> Summary:
        """Process ``units`` (none done yet) on the actors; records go through ``ledger.apply``."""
        ray = self.ray
        start = time.perf_counter()
        summary = Summary()
        run_id = uuid.uuid4().hex
        (ledger.output / RUN_FILE).write_text(run_id)  # under the ledger's lock: actors of an
        # older driver see another id and write nothing more (ray_worker.RemoteCommits)
        dispatch = Dispatch(units, workers=len(self.actors))
        ended: queue.Queue = queue.Queue()
        lock = threading.Lock()
        threads: list[threading.Thread] = []

        def apply(record, call: Call) -> None:
            if isinstance(record, Started):
                call.started = True
                return
            if isinstance(record, Event):
                getattr(progress, record.name)(*record.args)
                return
            if isinstance(record, Tally):
                with lock:
                    summary.done += record.done
                    summary.frames += record.frames
                    summary.segments += record.segments
                    summary.fatal = summary.fatal or record.fatal or None
                    for step, seconds in record.seconds.items():
                        summary.times.add(step, seconds, record.step_frames.get(step, 0))
                return
            ledger.apply(record)
            if isinstance(record, (Done, Failed)) and record.key:
                call.finished.add(record.key)
            if isinstance(record, Failed):
                with lock:
                    variant = next((u.variant for u in call.units if u.key == record.key), None)
                    summary.failures.append(Failure(Path(record.source), record.stage, record.reason,
                                                    variant))

        def consume(call: Call, generator) -> None:
            try:
                for ref in generator:
                    for record in ray.get(ref):
                        apply(record, call)
                ended.put((call, None))
            except BaseException as exc:  # noqa: BLE001 - sorted out by the scheduling loop
                ended.put((call, exc))

        def submit(call: Call) -> None:
            resume = {}
            for u in call.units:
                if u.kind == "video":  # from the last segment (and scratch part) the ledger holds
                    segments = ledger.segments(u.key)
                    resume[u.key] = (segments, ledger.scratches(u.key, len(segments)))
            generator = call.worker.handle.process.remote(call.units, resume, run_id,
                                                          uuid.uuid4().hex[:8], self.fingerprint)
            thread = threading.Thread(target=consume, args=(call, generator), daemon=True,
                                      name="ray-call")
            threads.append(thread)
            thread.start()

        def died(call: Call, exc: BaseException) -> None:
            if not call.worker.dead:
                call.worker.dead = True
                self.actors.append(self._new_actor(self.precision))  # up when it is
                print(f"ray: a worker died ({_first_line(exc)}); a new one is starting, and its "
                      "work goes to the others meanwhile", file=sys.stderr, flush=True)
            for unit, deaths in dispatch.ended(call, worker_died=True):
                apply(Failed(str(unit.source), "ray", f"its worker died {deaths} times (last: "
                             f"{_first_line(exc)}); not tried again in this run", unit.key), call)
                progress.unit_finished(False, unit.key if unit.kind in ALONE else None)

        try:
            while True:
                self._bring_up()
                if summary.fatal is None:
                    for call in dispatch.assign([a for a in self.actors if a.up and not a.dead]):
                        submit(call)
                if not dispatch.busy and (not dispatch.waiting or summary.fatal is not None):
                    break
                try:
                    call, exc = ended.get(timeout=0.5)
                except queue.Empty:
                    continue  # a replacement may be up by now
                if exc is None:
                    dispatch.ended(call, worker_died=False)
                elif isinstance(exc, ray.exceptions.RayActorError):
                    died(call, exc)
                else:
                    dispatch.ended(call, worker_died=False)
                    summary.fatal = summary.fatal or f"a Ray worker failed: {_first_line(exc)}"
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            stopped = summary.interrupted or summary.fatal is not None
            if stopped:
                for actor in self.actors:  # nothing is written after the summary
                    ray.kill(actor.handle, no_restart=True)
            for thread in threads:
                thread.join(timeout=5.0 if stopped else None)
        if not stopped:  # every call is over: what dead actors left half-written can go
            sweep_partials(ledger.output, (u.key for u in units))
        summary.wall_s = time.perf_counter() - start
        return summary

    def _bring_up(self) -> None:
        """Replacements whose ``describe`` came back are up (or failed to start: dead)."""
        waiting = [a for a in self.actors if not a.up and not a.dead]
        if not waiting:
            return
        ready, _ = self.ray.wait([a.ready for a in waiting], num_returns=len(waiting), timeout=0)
        for actor in waiting:
            if any(actor.ready == ref for ref in ready):
                try:
                    self._check(self.ray.get(actor.ready))
                    actor.up = True
                except self.ray.exceptions.RayError:
                    actor.dead = True

    def shutdown(self) -> None:
        self.ray.shutdown()


def actor_shape(nodes: list[dict], use_gpus: bool, workers: int | None,
                clips: bool = True) -> tuple[int, int]:
    """(actors, CPUs each).  With GPUs: one actor per GPU (or ``workers``), one CPU each.
    Without, by default: for a job with clips, one actor per node holding all of the smallest
    node's CPUs, so that each node runs the one-machine engine (a clip's frames go through
    one actor in order: its torch needs the node's cores); for images only, one actor per
    CPU with one thread (small images run faster that way: see docs/ray.md).  ``workers``
    actors share the nodes' CPUs evenly, at least one each."""
    alive = [n["Resources"] for n in nodes if n.get("Alive")]
    if use_gpus:
        return workers or int(sum(r.get("GPU", 0) for r in alive)), 1
    cpu_nodes = [int(r.get("CPU", 0)) for r in alive if r.get("CPU", 0) >= 1]
    if not cpu_nodes:
        raise RayUnavailable("the Ray cluster has no node with a CPU to run workers on")
    per_node = min(cpu_nodes)
    workers = workers or (len(cpu_nodes) if clips else per_node * len(cpu_nodes))
    return workers, max(1, min(per_node, per_node * len(cpu_nodes) // workers))


def _first_line(exc: BaseException) -> str:
    """The reason in one line: a worker's own exception (Ray wraps it, with a traceback, in a
    RayTaskError whose ``cause`` it is) rather than the wrapper's first line."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        exc = cause
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
