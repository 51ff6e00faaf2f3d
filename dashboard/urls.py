from django.urls import path

from dashboard import inbox_views, views

app_name = "dashboard"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("workflows/<str:name>/", views.workflow, name="workflow"),
    path("instances/", views.instances, name="instances"),
    path("instances/bulk/", views.bulk, name="bulk"),
    path("instances/<str:workflow>/<str:instance_id>/", views.instance, name="instance"),
    path("instances/<str:workflow>/<str:instance_id>/<str:name>/", views.action, name="action"),
    path("inbox/", inbox_views.inbox, name="inbox"),
    path("inbox/bulk/", inbox_views.bulk_decide, name="bulk-decide"),
    path("approvals/<int:request_id>/decide/", inbox_views.decide, name="decide"),
    path("approvals/<int:request_id>/image/", inbox_views.image, name="approval-image"),
]
