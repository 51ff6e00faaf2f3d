"""``manage.py workflows worker``: one process tree that runs everything the worker side needs.

- a django-q2 cluster (its own sentinel, pusher, monitor and N worker processes) that
  executes "advance instance N" tasks;
- the dispatcher, in this process, which kicks instances whose timers are due, whose
  worker died (expired lease), or whose kick was lost.

SIGTERM or SIGINT stops it cleanly: the dispatcher stops, every worker hands its instance
back at the next step boundary (a step already running finishes first), then the cluster
stops. Run as many of these as you like, on as many machines, against one database.
"""
from __future__ import annotations

import logging
import multiprocessing
import signal
import threading

from django.db import connections

from workflows import runtime
from workflows.dispatch import run_dispatcher

log = logging.getLogger("workflows.worker")


def run_worker(workers: int | None = None) -> None:
    from django_q.brokers import get_broker
    from django_q.cluster import Cluster
    from django_q.conf import Conf

    if workers:
        Conf.WORKERS = workers
        Conf.QUEUE_LIMIT = workers
    # Created before the cluster forks, so every worker process inherits it.
    runtime.DRAIN_EVENT = multiprocessing.get_context("fork").Event()
    stop = threading.Event()
    connections.close_all()  # never share a connection with forked children
    cluster = Cluster(get_broker())

    def request_stop(signum, frame):
        log.info("worker: %s received, shutting down", signal.Signals(signum).name)
        stop.set()

    # Cluster() installed its own handlers; ours stop the dispatcher first, then the cluster.
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    cluster.start()
    log.info("worker: %d worker processes started; dispatcher running", Conf.WORKERS)
    try:
        run_dispatcher(stop)
    finally:
        runtime.DRAIN_EVENT.set()
        cluster.stop()
        connections.close_all()
        log.info("worker: stopped")
