"""Every request the dashboard accepts is parsed and validated by one of these forms."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time
from typing import Any

from django import forms

from workflows import ACTIVE, Status

MAX_BULK = 500


class InstanceFilterForm(forms.Form):
    """The instance list's filters (GET); an unknown value is an error shown above the list."""

    workflow = forms.CharField(required=False)
    status = forms.ChoiceField(
        required=False, choices=[("", "any"), ("active", "active (queued or running)"), *Status.choices]
    )
    q = forms.CharField(required=False, max_length=100, strip=True)
    start = forms.DateField(required=False, input_formats=["%Y-%m-%d"])
    end = forms.DateField(required=False, input_formats=["%Y-%m-%d"])
    attr = forms.CharField(required=False, max_length=500, strip=True)  # "customer=acme order_id=8812"
    failed_step = forms.CharField(required=False, max_length=256, strip=True)
    error_name = forms.CharField(required=False, max_length=100, strip=True)
    version = forms.CharField(required=False, max_length=40, strip=True)
    cursor = forms.CharField(required=False, max_length=200)

    # The query string keeps its short names: ?from=...&to=...
    ALIASES = {"from": "start", "to": "end"}

    def __init__(self, data: Any = None, **kwargs: Any) -> None:
        if data is not None:
            data = {self.ALIASES.get(key, key): value for key, value in data.items()}
        super().__init__(data, **kwargs)
        self.fields["start"].error_messages["invalid"] = "'%(value)s' is not a date (use YYYY-MM-DD)."
        self.fields["end"].error_messages["invalid"] = "'%(value)s' is not a date (use YYYY-MM-DD)."
        self.fields["status"].error_messages["invalid_choice"] = "'%(value)s' is not a status."

    def error_list(self) -> list[str]:
        return [str(message) for messages in self.errors.values() for message in messages]

    def clean_attr(self) -> dict[str, str]:
        """``name=value`` pairs separated by spaces or commas."""
        pairs = {}
        for item in self.cleaned_data.get("attr", "").replace(",", " ").split():
            name, sep, value = item.partition("=")
            if not sep or not name or not value:
                raise forms.ValidationError(f"'{item}' is not name=value (e.g. customer=acme).")
            pairs[name] = value
        return pairs

    FILTERS = ("workflow", "status", "q", "start", "end", "attr", "failed_step", "error_name", "version")

    def query_values(self) -> dict[str, str]:
        """The filters as given (valid or not), under their query-string names, for links."""
        names = {"start": "from", "end": "to"}
        return {names.get(name, name): (self.data.get(name) or "").strip() for name in self.FILTERS}

    def count_arguments(self) -> dict[str, Any]:
        """Keyword arguments for ``workflows.count_instances`` (the same filters, no page)."""
        arguments = self.list_arguments()
        del arguments["cursor"]
        return arguments

    def list_arguments(self) -> dict[str, Any]:
        """Keyword arguments for ``workflows.list_instances`` (call only when the form is valid)."""
        data = self.cleaned_data
        active = data["status"] == "active"
        return {
            "workflow": data["workflow"] or None,
            "status": None if active else data["status"] or None,
            "statuses": list(ACTIVE) if active else None,
            "id_prefix": data["q"] or None,
            "created_after": _day_start(data["start"]),
            "created_before": _day_end(data["end"]),
            "cursor": data["cursor"] or None,
            **({"attributes": data["attr"]} if data["attr"] else {}),
            **({"failed_step": data["failed_step"]} if data["failed_step"] else {}),
            **({"error_name": data["error_name"]} if data["error_name"] else {}),
            **({"version": data["version"]} if data["version"] else {}),
        }


def _day_start(day: Any) -> datetime | None:
    return datetime.combine(day, time.min, tzinfo=UTC) if day else None


def _day_end(day: Any) -> datetime | None:
    return datetime.combine(day, time.max, tzinfo=UTC) if day else None


class BulkActionForm(forms.Form):
    ACTIONS = ("terminate", "pause", "resume")

    action = forms.ChoiceField(choices=[(a, a) for a in ACTIONS])
    selected = forms.Field(required=False, widget=forms.MultipleHiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["action"].error_messages["invalid_choice"] = "Unknown bulk action '%(value)s'."
        self.fields["action"].error_messages["required"] = "Choose a bulk action."

    def clean_selected(self) -> list[tuple[str, str]]:
        """``workflow/instance-id`` references, at most MAX_BULK of them."""
        pairs = []
        for ref in (self.cleaned_data.get("selected") or [])[:MAX_BULK]:
            workflow, _, instance_id = str(ref).partition("/")
            pairs.append((workflow, instance_id))
        return pairs


CODE_AREA = forms.Textarea(attrs={"rows": 5, "spellcheck": "false"})


class JsonField(forms.CharField):
    """A JSON value typed into a textarea (empty means ``empty``); the error names the problem."""

    def __init__(self, *, what: str, empty: str = "{}", **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("strip", False)
        super().__init__(**kwargs)
        self.what, self.empty = what, empty

    def to_python(self, value: Any) -> Any:
        raw = (super().to_python(value) or "").strip() or self.empty
        try:
            return json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise forms.ValidationError(f"The {self.what} is not valid JSON: {exc}") from None


class SendEventForm(forms.Form):
    """An operator sends an event from the timeline: a type and a JSON payload."""

    type = forms.CharField(max_length=100, strip=True)
    payload = JsonField(what="payload")


class ResolveStepForm(forms.Form):
    """An operator resolves a failed step by hand: its output (JSON) and why."""

    step = forms.CharField(max_length=256)
    count = forms.IntegerField(min_value=1, max_value=1_000_000, initial=1)
    output = JsonField(what="output", empty="null", widget=CODE_AREA)
    note = forms.CharField(max_length=2000, required=False, strip=True)


class RetryWithParamsForm(forms.Form):
    """Retry from the failed step with edited params."""

    params = JsonField(what="params", widget=CODE_AREA)


class BulkDecisionForm(forms.Form):
    """Approve or reject several requests (without forms) at once, with one comment."""

    selected = forms.Field(required=False, widget=forms.MultipleHiddenInput)
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    comment = forms.CharField(required=False, max_length=2000)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["decision"].error_messages["required"] = "Choose Approve or Reject."
        self.fields["decision"].error_messages["invalid_choice"] = "Choose Approve or Reject."

    def clean_selected(self) -> list[int]:
        ids = [str(value) for value in self.cleaned_data.get("selected") or []]
        if not ids:
            raise forms.ValidationError("Select the requests to decide first.")
        if any(not (value.isascii() and value.isdigit()) or len(value) > 18 for value in ids):
            raise forms.ValidationError("A selected request is not a request id.")
        return [int(value) for value in ids[:MAX_BULK]]


class DecidedFilterForm(forms.Form):
    """The inbox's history: filter by workflow, decider, outcome and closing date."""

    workflow = forms.CharField(required=False, max_length=64)
    decider = forms.CharField(required=False, max_length=150, help_text="a username, 'me' or 'any'")
    outcome = forms.ChoiceField(
        required=False,
        choices=[("", "any"), ("approved", "approved"), ("rejected", "rejected"), ("timed_out", "timed out"),
                 ("cancelled", "cancelled")],
    )  # fmt: skip
    start = forms.DateField(required=False, input_formats=["%Y-%m-%d"])
    end = forms.DateField(required=False, input_formats=["%Y-%m-%d"])

    ALIASES = {"from": "start", "to": "end"}

    def __init__(self, data: Any = None, **kwargs: Any):
        if data is not None:
            data = {self.ALIASES.get(key, key): value for key, value in data.items()}
        super().__init__(data, **kwargs)

    def error_list(self) -> list[str]:
        return [f"{name}: {message}" for name, messages in self.errors.items() for message in messages]


class StartInstanceForm(forms.Form):
    """An operator starts an instance from the workflow's page: an optional id, params as JSON."""

    id = forms.CharField(
        required=False,
        max_length=100,
        strip=True,
        label="Instance id",
        help_text="Optional: letters, digits, '-' and '_'. Leave empty for a random id.",
    )
    params = JsonField(
        what="params",
        initial="{}",
        label="Params (JSON)",
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
    )


class AwayForm(forms.Form):
    """ "Away from D1 to D2, delegate to X" (times in the site's time zone)."""

    starts = forms.DateTimeField(input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"])
    ends = forms.DateTimeField(input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"])
    delegate = forms.CharField(max_length=150, strip=True)
    note = forms.CharField(max_length=200, required=False, strip=True)

    def error_list(self) -> list[str]:
        return [
            f"{self.fields[name].label or name}: {message}" if name != "__all__" else str(message)
            for name, messages in self.errors.items()
            for message in messages
        ]


class BulkJobForm(forms.Form):
    """What to do to every instance matching the list's filter."""

    action = forms.ChoiceField(
        choices=[
            ("retry", "Retry from the failed step"),
            ("resolve", "Resolve the failed step by hand"),
            ("terminate", "Terminate"),
            ("pause", "Pause"),
            ("resume", "Resume"),
        ]  # fmt: skip
    )
    output = JsonField(what="output", empty="null", widget=CODE_AREA)
    note = forms.CharField(max_length=2000, required=False, strip=True)
