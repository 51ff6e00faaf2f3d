from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path

from api import views as api_views


def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico whatever the page says; send them to the real icon."""
    return HttpResponsePermanentRedirect(static("icons/favicon.svg"))


urlpatterns = [
    path("favicon.ico", favicon),
    path("admin/", admin.site.urls),
    path("api/", include("api.urls")),
    path("health/", api_views.health, name="health"),
    path("metrics", api_views.metrics, name="metrics"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    *([path("", include("examples.urls"))] if settings.EXAMPLES else []),
    path("", include("dashboard.urls")),
]


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """A JSON 404 under /api/ (clients parse errors there), Django's page elsewhere."""
    if request.path.startswith("/api/"):
        from django.http import JsonResponse

        message = f"there is no API endpoint {request.path!r:.200} (see /api/openapi.json)"
        return JsonResponse({"error": {"code": "not_found", "message": message}}, status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """A JSON 400 under /api/ (a malformed Host header, a suspicious request), Django's page elsewhere."""
    if request.path.startswith("/api/"):
        from django.http import JsonResponse

        return JsonResponse({"error": {"code": "invalid_request", "message": "the request is malformed"}}, status=400)
    from django.views.defaults import bad_request as page

    return page(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """Even a bug answers JSON under /api/ (it is logged with its traceback)."""
    if request.path.startswith("/api/"):
        from django.http import JsonResponse

        message = "the server failed to answer; the error is logged"
        return JsonResponse({"error": {"code": "server_error", "message": message}}, status=500)
    from django.views.defaults import server_error as page

    return page(request)


handler400 = bad_request
handler404 = not_found
handler500 = server_error
