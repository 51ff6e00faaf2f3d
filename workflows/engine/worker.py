"""``manage.py workflows worker``: one process tree that runs everything the worker side needs.

- a django-q2 cluster (its own sentinel, pusher, monitor and N worker processes) that
  executes "advance instance N" tasks;
- the dispatcher, in this process, which kicks instances whose timers are due, whose
  worker died (expired lease), or whose kick was lost;
- the fast lane, a supervised child process that runs an instance an event just woke
  (PostgreSQL) or whose timer the dispatcher found due, without crossing the queue
  (``engine.fast_lane``, ``engine.fast_lane_process``).

SIGTERM or SIGINT stops it cleanly: the dispatcher stops, every worker hands its instance
back at the next step boundary (a step already running finishes first), then the cluster
stops. Stopping is bounded by WORKFLOWS["SHUTDOWN_GRACE_SECONDS"]; what is still running
then is killed, and its instances are recovered by other workers once their leases expire.
Run as many of these as you like, on as many machines, against one database.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING

import psutil
from django.db import Error as DatabaseFailure
from django.db import connections

from workflows import conf
from workflows.engine import control, warm_up
from workflows.engine.dispatcher import run_dispatcher
from workflows.engine.fast_lane_process import FastLaneProcess

if TYPE_CHECKING:
    from django_q.cluster import Cluster

log = logging.getLogger("workflows.worker")


def run_worker(workers: int | None = None) -> None:
    from django_q.brokers import get_broker
    from django_q.cluster import Cluster
    from django_q.conf import Conf

    if workers:
        Conf.WORKERS = workers
        Conf.QUEUE_LIMIT = workers
        from django.conf import settings

        settings.WORKFLOWS = {**settings.WORKFLOWS, "WORKERS": workers}
    stop = threading.Event()
    prepare_to_fork()
    cluster = Cluster(get_broker())

    def request_stop(signum: int, frame: FrameType | None) -> None:
        log.info("worker: %s received, shutting down", signal.Signals(signum).name)
        stop.set()

    # Cluster() installed its own handlers; ours stop the dispatcher first, then the cluster.
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    cluster.start()
    fast_lane = FastLaneProcess(conf.get("WORKERS"))
    fast_lane.start()
    log.info("worker: %d worker processes started; dispatcher running", Conf.WORKERS)
    try:
        run_dispatcher(stop, fast_lane)
    finally:
        # The fast lane and the cluster drain at the same time, within one grace period;
        # whatever is left of either after it is killed (its leases then expire).
        deadline = time.monotonic() + conf.get("SHUTDOWN_GRACE_SECONDS")
        fast_lane.stopping()
        shut_down(cluster, conf.get("SHUTDOWN_GRACE_SECONDS"))
        fast_lane.stop(max(0.0, deadline - time.monotonic()))
        kill_descendants()
        try:
            from workflows.health import forget

            forget()
        except DatabaseFailure:
            log.warning("worker: could not remove its heartbeat row", exc_info=True)
        connections.close_all()
        log.info("worker: stopped")


def prepare_to_fork() -> None:
    """What the cluster's worker processes inherit or do as they start."""
    from django_q.signals import post_spawn

    from workflows.schedules import sync_schedules

    # Created before the cluster forks, so every worker process inherits it.
    control.DRAIN_FLAG = multiprocessing.get_context("fork").RawValue("b", 0)
    sync_schedules()
    connections.close_all()  # never share a connection with forked children
    # Each worker process gets ready for its first instance as soon as it is spawned.
    post_spawn.connect(warm_up.ready, dispatch_uid="workflows-warm-up")


def shut_down(cluster: Cluster, grace: float) -> None:
    """Drain and stop the cluster within ``grace`` seconds (the caller kills what is left)."""
    control.DRAIN_FLAG.value = 1
    # A SIGTERM sent to the whole process group (systemd, Ctrl-C) reaches the children too;
    # give them a moment, and do not wait on a sentinel that is already gone.
    time.sleep(0.2)
    if cluster.sentinel is not None and cluster.sentinel.is_alive():
        stopper = threading.Thread(target=cluster.stop, name="cluster-stop", daemon=True)
        stopper.start()
        stopper.join(grace)
        if stopper.is_alive():
            log.warning("worker: cluster did not stop within %s s; killing its processes", grace)


def kill_descendants() -> None:
    """SIGKILL every process below this one; their leases expire and others take over."""
    children = psutil.Process().children(recursive=True)
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(children, timeout=5)
