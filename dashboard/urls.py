from django.urls import path

from dashboard import away_views, bulk_views, inbox_views, link_views, saved_views, stats_views, views

app_name = "dashboard"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("workflows/<str:name>/", views.workflow, name="workflow"),
    path("instances/", views.instances, name="instances"),
    path("instances/bulk/", views.bulk, name="bulk"),
    path("views/save/", saved_views.save_view, name="save-view"),
    path("views/<int:view_id>/delete/", saved_views.delete_view, name="delete-view"),
    path("bulk-jobs/", bulk_views.job_list, name="bulk-jobs"),
    path("bulk-jobs/new/", bulk_views.new_job, name="bulk-new"),
    path("bulk-jobs/<int:job_id>/", bulk_views.job_page, name="bulk-job"),
    path("bulk-jobs/<int:job_id>/results.csv", bulk_views.job_results, name="bulk-results"),
    path("bulk-jobs/<int:job_id>/cancel/", bulk_views.cancel_job, name="bulk-cancel"),
    path("instances/<str:workflow>/<str:instance_id>/", views.instance, name="instance"),
    path("instances/<str:workflow>/<str:instance_id>/<str:name>/", views.action, name="action"),
    path("inbox/", inbox_views.inbox, name="inbox"),
    path("inbox/bulk/", inbox_views.bulk_decide, name="bulk-decide"),
    path("approvals/", stats_views.approval_stats, name="approvals"),
    path("approvals/link/<str:token>/", link_views.decision_link, name="decision-link"),
    path("approvals/<int:request_id>/decide/", inbox_views.decide, name="decide"),
    path("approvals/<int:request_id>/image/", inbox_views.image, name="approval-image"),
    path("settings/away/", away_views.away, name="away"),
    path("settings/away/<int:absence_id>/cancel/", away_views.cancel_away, name="cancel-away"),
]
