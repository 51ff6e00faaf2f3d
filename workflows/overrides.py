"""The engine's side of test modifications: what a replay should do differently.

``workflows.testing`` writes ``TestOverride`` rows; the runner loads the ones for its
instance at claim time and asks ``Overrides`` at each step. Steps are selected by name and
1-based occurrence (``index``), or all steps when a selector list is ``True``.

Spec keys: ``disable_sleeps``, ``disable_retry_delays`` (True or a list of selectors),
``step_results`` ([{name, index, value}], value in stored form), ``step_errors`` ([{name,
index, error, times}]), ``step_timeouts`` ([{name, index, times}]), ``event_timeouts``
([{name, index}]).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from workflows import conf
from workflows.values import decode

# True while a workflows.testing session is active in this process.
ACTIVE_IN_PROCESS = False


def enabled() -> bool:
    return ACTIVE_IN_PROCESS or bool(conf.get("TEST_OVERRIDES"))


def _matches(selector: dict, name: str, index: int) -> bool:
    return selector["name"] == name and selector.get("index", 1) == index


def _selected(setting: bool | list[dict[str, Any]] | None, name: str, index: int) -> bool:
    if setting is True:
        return True
    return any(_matches(sel, name, index) for sel in setting or [])


class Overrides:
    """The merged modifications for one instance (workflow-wide ones first)."""

    def __init__(self, specs: list[dict]) -> None:
        self.disable_sleeps: bool | list = []
        self.disable_retry_delays: bool | list = []
        self.step_results: list = []
        self.step_errors: list = []
        self.step_timeouts: list = []
        self.event_timeouts: list = []
        for spec in specs:
            for key in ("disable_sleeps", "disable_retry_delays"):
                value = spec.get(key)
                if value is True:
                    setattr(self, key, True)
                elif value and getattr(self, key) is not True:
                    getattr(self, key).extend(value)
            for key in ("step_results", "step_errors", "step_timeouts", "event_timeouts"):
                getattr(self, key).extend(spec.get(key, []))

    def sleep_disabled(self, name: str, index: int) -> bool:
        return _selected(self.disable_sleeps, name, index)

    def retry_delay_disabled(self, name: str, index: int) -> bool:
        return _selected(self.disable_retry_delays, name, index)

    def mocked_result(self, name: str, index: int) -> tuple[bool, Any]:
        """(True, value) when the step's result is mocked, else (False, None)."""
        for mock in self.step_results:
            if _matches(mock, name, index):
                return True, decode(mock["value"])
        return False, None

    def mocked_error(self, name: str, index: int, attempt: int) -> dict[str, Any] | None:
        for mock in self.step_errors:
            if _matches(mock, name, index) and (mock.get("times") is None or attempt <= mock["times"]):
                return mock["error"]
        return None

    def forced_timeout(self, name: str, index: int, attempt: int) -> bool:
        return any(
            _matches(mock, name, index) and (mock.get("times") is None or attempt <= mock["times"])
            for mock in self.step_timeouts
        )

    def event_timeout_forced(self, name: str, index: int) -> bool:
        return any(_matches(sel, name, index) for sel in self.event_timeouts)


NONE = Overrides([])


def load(workflow_name: str, instance_id: str) -> Overrides:
    """The overrides for an instance; one indexed query, and none at all when disabled."""
    if not enabled():
        return NONE
    from workflows.models import TestOverride

    specs = list(
        TestOverride.objects.filter(workflow_name=workflow_name)
        .filter(Q(instance_id__isnull=True) | Q(instance_id=instance_id))
        .order_by("pk")
        .values_list("instance_id", "spec")
    )
    specs.sort(key=lambda row: row[0] is not None)
    return Overrides([spec for _, spec in specs])
