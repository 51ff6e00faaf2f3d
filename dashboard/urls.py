from django.urls import path

from dashboard import views

app_name = "dashboard"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("workflows/<str:name>/", views.workflow, name="workflow"),
    path("instances/", views.instances, name="instances"),
    path("instances/bulk/", views.bulk, name="bulk"),
    path("instances/<str:workflow>/<str:instance_id>/", views.instance, name="instance"),
    path("instances/<str:workflow>/<str:instance_id>/<str:name>/", views.action, name="action"),
    path("inbox/", views.inbox, name="inbox"),
    path("inbox/decide/", views.decision, name="decide"),
]
