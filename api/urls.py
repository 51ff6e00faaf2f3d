from django.urls import path

from api import approvals, audit, bulk, delegations, views

app_name = "api"
urlpatterns = [
    path("approvals", approvals.approval_list, name="approvals"),
    path("approvals/<str:request_id>", approvals.approval_detail, name="approval"),
    path("approvals/<str:request_id>/decision", approvals.approval_decision, name="approval-decision"),
    path("audit", audit.audit_list, name="audit"),
    path("bulk-jobs", bulk.bulk_job_list, name="bulk-jobs"),
    path("bulk-jobs/<str:job_id>", bulk.bulk_job_detail, name="bulk-job"),
    path("delegations", delegations.delegation_list, name="delegations"),
    path("delegations/<str:absence_id>", delegations.delegation_detail, name="delegation"),
    path("openapi.json", views.openapi, name="openapi"),
    path("workflows", views.workflows, name="workflows"),
    path("workflows/<str:name>", views.workflow_detail, name="workflow"),
    path("workflows/<str:name>/instances", views.instances, name="instances"),
    path("workflows/<str:name>/instances/batch", views.instances_batch, name="instances-batch"),
    path("workflows/<str:name>/instances/<str:instance_id>", views.instance_detail, name="instance"),
    path("workflows/<str:name>/instances/<str:instance_id>/status", views.instance_status, name="instance-status"),
    path(
        "workflows/<str:name>/instances/<str:instance_id>/events/<str:event_type>",
        views.instance_event,
        name="instance-event",
    ),
]
