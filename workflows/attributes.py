"""Search attributes: business keys ("customer" = "acme") that find an instance among millions.

Written from the params named by ``Workflow.search_attributes`` in the transaction that
creates the instance, and by ``step.set_attributes`` from ``run()`` (fenced by the
instance's lease; a replay writes the same values again, which changes nothing). Looked up
by ``list_instances(attributes=...)`` through the (name, value, instance) index.
"""

from __future__ import annotations

from typing import Any

from workflows.definition import lookup
from workflows.models import Instance, InstanceAttribute
from workflows.queries import attribute_text, check_attributes


def from_params(workflow: str, params: Any) -> list[tuple[str, str]]:
    """The (name, value) pairs a new instance's params give its search attributes."""
    cls = lookup(workflow)
    names = getattr(cls, "search_attributes", ()) if cls is not None else ()
    if not names or not isinstance(params, dict):
        return []
    pairs = []
    for name in names:
        text = attribute_text(params.get(name)) if name in params else None
        if text is not None:
            pairs.append((name, text))
    return pairs


def write(instances: list[Instance], pairs_of: dict[int, list[tuple[str, str]]]) -> None:
    """Insert the attributes of newly created instances (one statement)."""
    rows = [
        InstanceAttribute(instance=instance, name=name, value=value)
        for instance in instances
        for name, value in pairs_of.get(instance.pk, [])
    ]
    if rows:
        InstanceAttribute.objects.bulk_create(rows, ignore_conflicts=True)


def set_values(instance_pk: int, values: dict[str, Any]) -> None:
    """Add or change attributes of one instance (checked; WorkflowError names a bad one)."""
    for name, value in check_attributes(values):
        InstanceAttribute.objects.update_or_create(instance_id=instance_pk, name=name, defaults={"value": value})


def of_instance(instance_pk: int) -> dict[str, str]:
    return dict(InstanceAttribute.objects.filter(instance_id=instance_pk).order_by("name").values_list("name", "value"))
