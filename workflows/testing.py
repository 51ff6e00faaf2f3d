"""Run instances inside the current process, with the engine's clock under the test's control.

    create instances ...; run_until_idle(); clock.advance(timedelta(days=7)); run_until_idle()

No worker, no real waiting: each call advances every instance that has work now, until none
has. Step callbacks run on this thread, inside the test's transaction, one at a time. Set ``WORKFLOWS["ENQUEUE"] = False`` in test settings so nothing is sent to django-q2.
"""
from __future__ import annotations

from workflows import clock, runtime, store
from workflows.models import Instance


def run_until_idle(max_rounds: int = 1000) -> int:
    """Advance instances with work due now until there is none; returns how many advances ran."""
    advanced = 0
    for _ in range(max_rounds):
        pks = list(Instance.objects.filter(store.claimable(clock.now())).order_by("pk").values_list("pk", flat=True))
        if not pks:
            return advanced
        for pk in pks:
            runtime.advance(pk, renew_leases=False, inline_callbacks=True)
            advanced += 1
    raise RuntimeError(f"instances still had work after {max_rounds} rounds; is a workflow looping?")
