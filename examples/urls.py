from django.urls import path

from examples import views

urlpatterns = [path("examples/source/<str:token>.json", views.source, name="example-source")]
