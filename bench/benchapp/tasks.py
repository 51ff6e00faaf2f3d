"""Baseline: a bare django-q2 task that records when it ran (one commit, like a step)."""

import time


def noop(key: str) -> None:
    from bench.benchapp.models import Mark

    Mark.objects.create(key=key, t=time.time())
