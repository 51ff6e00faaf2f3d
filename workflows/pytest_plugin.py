"""pytest fixtures for testing workflows (registered by the package as a pytest plugin).

- ``workflow_runner``: the in-process runner on a fresh engine clock, with the database
  (pytest-django's ``db``). ``workflow_runner.run_until_idle()``, ``.advance("7 days")``.
- ``frozen_clock``: the engine's clock, stopped; ``frozen_clock.advance(timedelta(...))``.
- ``worker_runner``: real worker processes against the test database (use with
  ``@pytest.mark.django_db(transaction=True)``); stopped after the test.

Kicks to django-q2 are switched off for in-process tests, so nothing is left queued.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_django.fixtures import Settings as SettingsWrapper

    from workflows.testing import InProcessRunner, WorkerRunner


@pytest.fixture
def workflow_runner(db: None, settings: SettingsWrapper) -> Iterator[InProcessRunner]:
    from workflows import clock, metrics
    from workflows.testing import InProcessRunner

    settings.WORKFLOWS = {**getattr(settings, "WORKFLOWS", {}), "ENQUEUE": False}
    clock.reset()
    metrics.discard()
    yield InProcessRunner()
    clock.reset()


class FrozenClock:
    """The engine's clock, stopped: only ``advance`` moves it."""

    def __init__(self, clock: ModuleType) -> None:
        self._clock = clock
        self.start: datetime = clock.freeze()

    def now(self) -> datetime:
        return self._clock.now()

    def advance(self, delta: timedelta | float) -> datetime:
        self._clock.advance(delta if isinstance(delta, timedelta) else timedelta(seconds=delta))
        return self._clock.now()


@pytest.fixture
def frozen_clock() -> Iterator[FrozenClock]:
    from workflows import clock

    clock.reset()
    yield FrozenClock(clock)
    clock.reset()


@pytest.fixture
def worker_runner(transactional_db: None, settings: SettingsWrapper, tmp_path: Path) -> Iterator[WorkerRunner]:
    from workflows.testing import WorkerRunner

    settings.WORKFLOWS = {**getattr(settings, "WORKFLOWS", {}), "ENQUEUE": True}
    runner = WorkerRunner(tmp_path)
    runner.start()
    yield runner
    runner.stop()
