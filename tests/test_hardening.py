"""Hardened by default: each finding of the security review, as a test that failed before.

Bad input answers 400/404 with JSON under /api/ (never a 500), server-side fetches stay off
internal addresses, logins and tokens are throttled, weak passwords are refused, pages carry
a Content-Security-Policy, and the development defaults never reach production.
"""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

from api.models import ApiToken
from workflows import get_workflow
from workflows.bindings.http import SafeHTTP, URLRefused

pytestmark = pytest.mark.usefixtures("engine")


@pytest.fixture
def operator_token(db):
    user = User.objects.create_user("ops", password="a long enough password")
    user.user_permissions.add(*Permission.objects.filter(codename__in=["operate_instance", "send_event"]))
    return ApiToken.issue(user)[1]


def call(client, method, path, token, raw=None, body=None):
    data = raw if raw is not None else (json.dumps(body) if body is not None else "")
    response = getattr(client, method)(
        path, data=data, content_type="application/json", headers={"Authorization": f"Bearer {token}"}
    )
    return response


def error_of(response, status):
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    return response.json()["error"]


# --------------------------------------------------------------------------- 4. bad input


def test_json_nested_thousands_deep_is_a_400_not_a_recursion_error(client, operator_token):
    deep = "[" * 100_000 + "]" * 100_000
    error = error_of(call(client, "post", "/api/workflows/t-waiter/instances", operator_token, raw=deep), 400)
    assert "nested too deeply" in error["message"]


def test_a_lone_surrogate_in_params_or_a_payload_is_a_400_naming_it(client, operator_token):
    raw = '{"id": "s1", "params": {"name": "\\ud800"}}'
    error = error_of(call(client, "post", "/api/workflows/t-waiter/instances", operator_token, raw=raw), 400)
    assert "surrogate" in error["message"]
    get_workflow("t-waiter").create(id="s2")
    events = "/api/workflows/t-waiter/instances/s2/events/go"
    error = error_of(call(client, "post", events, operator_token, raw='{"x": "\\udfff"}'), 400)
    assert "surrogate" in error["message"]


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("get", "/api/workflows/t-waiter/instances?q=a%00b", None),
        ("get", "/api/workflows/t-waiter/instances/a%00b", None),
        ("post", "/api/workflows/t-waiter/instances", {"id": "a\x00b"}),
        ("patch", "/api/workflows/t-waiter/instances/nul/status", {"status": "restart", "from_step": "a\x00b"}),
    ],
)
def test_a_nul_byte_anywhere_is_a_400(client, operator_token, method, path, body):
    get_workflow("t-waiter").create(id="nul")
    error = error_of(call(client, method, path, operator_token, body=body), 400)
    assert "NUL" in error["message"] or "invalid instance id" in error["message"]


def test_a_nul_byte_in_a_dashboard_filter_or_form_is_a_400(client, db):
    client.force_login(User.objects.create_user("viewer"))
    assert client.get("/instances/?q=a%00b").status_code == 400
    assert client.get("/inbox/?tab=decided&decider=a%00").status_code == 400


def test_huge_numbers_and_long_names_are_refused_cleanly(client, operator_token):
    get_workflow("t-waiter").create(id="big")
    status = "/api/workflows/t-waiter/instances/big/status"
    huge = {"status": "restart", "from_step": "x", "count": 99999999999999999999999}
    assert call(client, "patch", status, operator_token, body=huge).status_code in (400, 409)
    assert error_of(call(client, "get", "/api/approvals?limit=99999999999999999999999", operator_token), 400)
    long_name = "w" * 70
    assert error_of(call(client, "get", f"/api/workflows/{long_name}/instances", operator_token), 404)


def test_an_unmatched_api_path_is_a_json_404(client, operator_token):
    error = error_of(call(client, "get", "/api/no/such/thing", operator_token), 404)
    assert error["code"] == "not_found" and "openapi" in error["message"]
    assert client.get("/no-such-page/").status_code == 404  # pages keep Django's page


# --------------------------------------------------------------------------- 2. server-side fetches


@pytest.mark.parametrize(
    "url, reason",
    [
        ("file:///etc/passwd", "only http and https"),
        ("ftp://example.com/x", "only http and https"),
        ("http://127.0.0.1:5432/", "loopback"),
        ("http://localhost/", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.0.0.8/", "private"),
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://0.0.0.0/", "private|unspecified"),
    ],
)
def test_fetches_refuse_other_schemes_and_internal_addresses(url, reason):
    with pytest.raises(URLRefused, match=reason):
        SafeHTTP().get(url)


def test_a_fetch_follows_redirects_only_to_allowed_places_and_caps_the_size(live_server):
    allowed = SafeHTTP(allowed_hosts=["localhost", "127.0.0.1"], max_bytes=1000)
    with pytest.raises(URLRefused, match="larger than 1,000 bytes"):
        allowed.get(f"{live_server.url}/static/dashboard/dashboard.css")
    redirect = f"{live_server.url}/favicon.ico"  # a redirect to the icon, on loopback
    assert SafeHTTP(allowed_hosts=["localhost", "127.0.0.1"]).get(redirect).status == 200
    with pytest.raises(URLRefused, match="loopback"):
        SafeHTTP().get(redirect)


def test_the_data_pipeline_example_cannot_read_local_files(workflow_runner, settings):
    handle = get_workflow("data-pipeline").create(id="ssrf", params={"sourceUrl": "file:///etc/passwd"})
    workflow_runner.run_until_idle()
    status = handle.status()
    assert status["status"] == "errored" and "only http and https" in status["error"]["message"]
    assert "root:" not in json.dumps(handle.describe(), default=str)


# --------------------------------------------------------------------------- 3. logins and tokens


def test_logins_lock_out_after_five_failures_even_with_the_right_password(client, db):
    User.objects.create_user("ada", password="the right password 42")
    for _ in range(5):
        client.post("/login/", {"username": "ada", "password": "wrong"})
    locked = client.post("/login/", {"username": "ada", "password": "the right password 42"})
    assert locked.status_code == 429 and "Too many failed logins" in locked.content.decode()
    assert "_auth_user_id" not in client.session
    admin = client.post("/admin/login/", {"username": "ada", "password": "the right password 42"})
    assert admin.status_code == 429


def test_a_good_login_still_works_and_failures_are_recorded(client, db):
    from axes.models import AccessAttempt

    User.objects.create_user("bob", password="the right password 42")
    client.post("/login/", {"username": "bob", "password": "nope"})
    assert AccessAttempt.objects.filter(username="bob").exists()
    assert client.post("/login/", {"username": "bob", "password": "the right password 42"}).status_code == 302


def test_guessing_tokens_gets_429_with_retry_after(client, operator_token, settings):
    settings.API_TOKEN_FAILURE_LIMIT = 20
    for n in range(20):
        assert call(client, "get", "/api/workflows", f"wf_guess{n}").status_code == 401
    refused = call(client, "get", "/api/workflows", operator_token)  # even the right one, for a while
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert error_of(refused, 429)["code"] == "too_many_failures"


@pytest.mark.parametrize("weak", ["password", "12345678", "12345678901", "ada-ada"])
def test_weak_passwords_are_refused(weak, db):
    with pytest.raises(ValidationError):
        validate_password(weak, User(username="ada"))


# --------------------------------------------------------------------------- 5, 6. headers and defaults


def test_every_page_carries_a_content_security_policy(client, db):
    client.force_login(User.objects.create_user("viewer"))
    policy = client.get("/")["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy


def production_env(**extra):
    env = {
        **os.environ, "PRODUCTION": "1", "SECRET_KEY": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        "ALLOWED_HOSTS": "workflows.example.com",
        "DJANGO_SETTINGS_MODULE": "config.settings", **extra,
    }  # fmt: skip
    env.pop("DEBUG", None)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set by the browser tests' module, never in a deployment
    return env


def manage(*args, **env):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=production_env(**env),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_check_deploy_is_clean_in_production_mode():
    result = manage("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_without_production_the_secret_key_is_generated_per_checkout_not_published():
    key_file = settings.BASE_DIR / "var" / "secret-key"
    assert settings.SECRET_KEY != "dev-only-insecure-secret-key-change-me"
    assert key_file.exists() and key_file.read_text().strip() == settings.SECRET_KEY
    assert oct(key_file.stat().st_mode)[-3:] == "600"


def test_examples_are_off_in_production_unless_asked_for():
    shell = "from django.conf import settings; print('examples' in settings.INSTALLED_APPS)"
    assert manage("shell", "-c", shell).stdout.strip().splitlines()[-1] == "False"
    assert manage("shell", "-c", shell, WORKFLOWS_EXAMPLES="1").stdout.strip().splitlines()[-1] == "True"


# --------------------------------------------------------------------------- 7. stale queue rows


def test_queue_depth_counts_only_tasks_really_waiting(db):
    from datetime import timedelta

    from django.utils import timezone
    from django_q.models import OrmQ

    from workflows import health_status

    OrmQ.objects.create(key="workflows", payload="waiting", lock=timezone.now() - timedelta(seconds=1))
    # Taken by a worker that was then killed: locked until django-q2's retry time, two hours on.
    OrmQ.objects.create(key="workflows", payload="orphaned", lock=timezone.now() + timedelta(hours=2))
    status = health_status()
    assert (status["queue_depth"], status["queue_in_flight"]) == (1, 1)
