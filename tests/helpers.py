from datetime import timedelta
from types import SimpleNamespace

from workflows import clock, get_workflow
from workflows.models import Instance, Step
from workflows.testing import run_until_idle


def start(name, params=None, id=None):
    return get_workflow(name).create(id=id, params=params)


def run(instance=None):
    run_until_idle()
    return instance.status() if instance is not None else None


def later(**kwargs):
    """Move the engine's clock forward and run what became due."""
    clock.advance(timedelta(**kwargs))
    run_until_idle()


def steps_of(instance):
    return list(Step.objects.filter(instance__instance_id=instance.id).order_by("seq"))


def attempts_of(instance, name):
    """The attempts of a step as describe() tells them (failed ones, plus the running or successful one)."""
    step = next(s for s in instance.describe()["steps"] if s["name"] == name)
    return [SimpleNamespace(**a) for a in step["attempts"]]


def row(instance):
    return Instance.objects.get(workflow_name=instance.workflow_name, instance_id=instance.id)
