"""The dashboard's side of approvals: what a card shows, and deciding from a posted form.

A card is one request as a person sees it: its title and details, the quorum so far, who
asked, how long is left, and (when they may decide it) the decision form, prefixed by the
request's id so several cards fit one page. Decisions go through ``workflows.approvals``
only; a refusal comes back with its reason, invalid form data with the form bound to what
was typed and its errors, so nothing typed is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.http import QueryDict

from workflows import WorkflowError, approvals, now


@dataclass
class Card:
    request: approvals.Request
    form: forms.Form | None  # the decision form (None: the request has none)
    refusal: approvals.DecisionRefused | None  # why this user may not decide it (None: they may)
    comment: str = ""
    error: str = ""  # a refusal to show on the card after a failed attempt
    action: str = ""  # where the decision form posts (default: the card's decide URL)
    show_images: bool = True  # thumbnails need a login (a token-only link page shows names)
    on_behalf_of: str = ""  # the away approver this user decides for

    @property
    def can_decide(self) -> bool:
        return self.refusal is None

    @property
    def selectable(self) -> bool:
        """In a bulk decision: only requests without a form (those are decided one by one), and
        only where the bulk form is (the inbox; a decision link's page decides one request)."""
        return self.can_decide and self.form is None and not self.action

    @property
    def prefix(self) -> str:
        return f"r{self.request.id}"

    @property
    def progress(self) -> str:
        """ "1 of 2 approvals, by ada" """
        approved = [d.by for d in self.request.decisions if d.approved]
        text = f"{len(approved)} of {self.request.quorum} approval{'s' if self.request.quorum != 1 else ''}"
        return text + (f", by {', '.join(approved)}" if approved else "")

    @property
    def approvers(self) -> str:
        if self.request.approvers is None:
            return "anyone who may approve"
        return ", ".join(_approver_label(entry) for entry in self.request.approvers)

    @property
    def time_left(self) -> float | None:
        deadline = self.request.deadline
        return (deadline - now()).total_seconds() if deadline else None

    @property
    def detail_rows(self) -> list[tuple[str, Any, bool]]:
        """(label, value, is an image) of each detail, in the author's order."""
        return [(label, value, isinstance(value, approvals.Image)) for label, value in self.request.details.items()]


def _approver_label(entry: str) -> str:
    kind, _, value = entry.partition(":")
    return {"group": f"group {value}", "user": value, "perm": f"whoever holds {value}"}.get(kind, entry)


def card(
    request: approvals.Request, user: Any, *, post: QueryDict | None = None, error: str = "", action: str = ""
) -> Card:
    on_behalf_of, refusal = request.decider(user)
    form = _form(request, post, f"r{request.id}")
    comment = (post.get(f"r{request.id}-comment") or "") if post is not None else ""
    logged_in = bool(getattr(user, "is_authenticated", False))
    return Card(request, form, refusal, comment, error, action, show_images=logged_in, on_behalf_of=on_behalf_of)


def _form(request: approvals.Request, post: QueryDict | None, prefix: str) -> forms.Form | None:
    try:
        form_class = request.form_class
    except WorkflowError:
        return None
    if form_class is None:
        return None
    form = form_class(data=post, prefix=prefix) if post is not None else form_class(prefix=prefix)
    if post is not None:
        form.is_valid()  # shows each field's errors beside what was typed
    return form


def cards(requests: list[approvals.Request], user: Any) -> list[Card]:
    return [card(r, user) for r in requests]


@dataclass
class Outcome:
    card: Card
    decided: bool
    message: str = ""
    problems: list[str] = field(default_factory=list)


def decide_from_post(
    request_id: int,
    user: Any,
    post: QueryDict,
    *,
    via: Callable[..., approvals.Request] | None = None,
    action: str = "",
) -> Outcome:
    """Decide from a card's form. On refusal the card comes back with what was typed and why.

    ``via`` decides instead of ``approvals.decide`` (a decision link), taking ``approved``,
    ``comment`` and ``data``; ``action`` is where the returned card's form posts.
    """
    current = approvals.get(request_id)
    prefix = f"r{request_id}"
    verdict = post.get("decision")
    if verdict not in ("approve", "reject"):
        return Outcome(card(current, user, post=post, error="Choose Approve or Reject.", action=action), False)
    form = _form(current, None, prefix)
    data = None
    if form is not None:
        data = {name: _field_value(post, f"{prefix}-{name}", f) for name, f in form.fields.items()}
    decision: dict[str, Any] = {
        "approved": verdict == "approve",
        "comment": post.get(f"{prefix}-comment", ""),
        "data": data,
    }
    try:
        if via is not None:
            decided = via(**decision)
        else:
            decided = approvals.decide(request_id, user=user, channel="dashboard", **decision)
    except approvals.DecisionRefused as exc:
        refused = card(approvals.get(request_id), user, post=post, error=str(exc), action=action)
        return Outcome(refused, False, str(exc))
    word = "Approved" if verdict == "approve" else "Rejected"
    state = "open" if decided.is_open else decided.status
    message = f"{word} {decided.workflow}/{decided.instance_id} ({decided.title}); the request is now {state}."
    return Outcome(card(decided, user, action=action), True, message)


def _field_value(post: QueryDict, key: str, form_field: forms.Field) -> Any:
    if isinstance(form_field, forms.MultipleChoiceField):
        return post.getlist(key)
    return post.get(key)


def bulk_decide(user: Any, request_ids: list[int], approved: bool, comment: str) -> list[tuple[int, bool, str]]:
    """Decide several requests with one comment; (id, decided, what happened) for each."""
    results = []
    for request_id in request_ids:
        try:
            decided = approvals.decide(request_id, user=user, approved=approved, comment=comment, channel="dashboard")
        except approvals.DecisionRefused as exc:
            results.append((request_id, False, f"refused: {exc}"))
            continue
        state = "still open" if decided.is_open else decided.status
        results.append((request_id, True, f"{decided.workflow}/{decided.instance_id}: decided ({state})"))
    return results
