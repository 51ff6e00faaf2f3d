"""The engine: how a worker advances an instance. Nothing here is public API.

Where each job lives:

===================  ======================================================================
``replay.py``        the replay loop: ``InstanceRun`` (one claim) and ``ReplayPass`` (one pass
                     of ``run()``), and what a pass leads to (complete, error, park, hand back)
``context.py``       the objects ``run(event, step)`` and step callbacks receive
``steps.py``         ``step.do``: memoisation, attempts, timeouts, retries and backoff
``waits.py``         ``step.sleep``, ``sleep_until`` and ``wait_for_event``
``events.py``        event delivery: a wait takes its event (FIFO per type) or times out
``records.py``       the fenced writes of a step's attempts, result, error and sleep
``leases.py``        claiming, fencing, renewing (heartbeat) and step leases
``parking.py``       letting go of an instance: park until its timer, hand back, finish
``fanout.py``        handing steps to other worker processes and watching them
``remote.py``        a fan-out worker's run of someone else's instance
``dispatcher.py``    the loop that kicks due instances (timers, dead workers, lost kicks)
``worker.py``        ``manage.py workflows worker``: the django-q2 cluster plus the dispatcher
``broker.py``        django-q2's ORM broker woken by LISTEN/NOTIFY on PostgreSQL
``bridge.py``        database calls from the replay's event loop, on the connection's thread
``threads.py``       where plain-function callbacks run
``rows.py``          the in-memory copy of an instance's steps
``control.py``       the signals that stop a pass (Suspend, Abandon) and the drain flag
===================  ======================================================================

Shared with the public API, outside this package: ``workflows.timers`` (due times, kicks,
waking), ``workflows.history`` (attempts that never reported back) and
``workflows.error_records``. The django-q2 task entry points are ``workflows.tasks``.
"""
