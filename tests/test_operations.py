"""Operations: health, metrics, production settings, structured logs."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from api.models import ApiToken
from workflows import get_workflow
from workflows.health import beat
from workflows.logs import JsonFormatter, fields

ROOT = Path(__file__).resolve().parent.parent


def test_health_answers_without_login_and_reports_workers_and_lag(client, engine):
    get_workflow("t-waiter").create(id="h")
    body = client.get("/health/").json()
    assert body["database"] in ("sqlite", "postgresql") and body["workers_alive"] == 0
    assert body["status"].startswith("degraded")
    from workflows import clock

    beat(clock.now(), 2)
    body = client.get("/health/").json()
    assert (body["status"], body["workers_alive"], body["worker_processes"]) == ("ok", 1, 2)


def test_metrics_need_a_token_and_count_what_happened(client, engine):
    get_workflow("t-waiter").create_batch([{"id": "m1"}, {"id": "m2"}])
    assert client.get("/metrics").status_code == 401
    token = ApiToken.issue(User.objects.create_user("prom"))[1]
    text = client.get("/metrics", headers={"Authorization": f"Bearer {token}"}).content.decode()
    assert 'workflows_instances_started_total{workflow="t-waiter"} 2.0' in text
    assert "# TYPE workflows_due_lag_seconds gauge" in text and "workflows_queue_depth" in text


GOOD_KEY = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"  # long and varied, like a real one


def settings_check(**env):
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={
            **{k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS")},
            "DJANGO_SETTINGS_MODULE": "config.settings",
            **env,
        },
    )
    return result.returncode, result.stderr


@pytest.mark.parametrize(
    "env,problem",
    [
        ({"PRODUCTION": "1", "DEBUG": "1", "SECRET_KEY": GOOD_KEY, "ALLOWED_HOSTS": "example.com"}, "DEBUG is on"),
        ({"PRODUCTION": "1", "ALLOWED_HOSTS": "example.com"}, "SECRET_KEY must be a random secret"),
        ({"PRODUCTION": "1", "SECRET_KEY": "short", "ALLOWED_HOSTS": "example.com"}, "SECRET_KEY must be a random"),
        ({"PRODUCTION": "1", "SECRET_KEY": "x" * 60, "ALLOWED_HOSTS": "example.com"}, "SECRET_KEY must be a random"),
        ({"PRODUCTION": "1", "SECRET_KEY": GOOD_KEY}, "ALLOWED_HOSTS must list"),
        (
            {"PRODUCTION": "1", "SECRET_KEY": GOOD_KEY, "ALLOWED_HOSTS": "e.com", "SECURE_COOKIES": "false"},
            "SECURE_COOKIES",
        ),
    ],
)
def test_production_settings_refuse_development_defaults(env, problem):
    code, stderr = settings_check(**env)
    assert code != 0 and problem in stderr


def test_production_settings_start_when_configured():
    assert settings_check(PRODUCTION="1", SECRET_KEY=GOOD_KEY, ALLOWED_HOSTS="example.com")[0] == 0


def test_json_logs_carry_workflow_instance_and_step():
    record = logging.getLogger("workflows.engine").makeRecord(
        "workflows.engine",
        logging.INFO,
        __file__,
        1,
        "step %r failed",
        ("charge",),
        None,
        **fields("billing", "inv-1", "charge", 2),
    )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "step 'charge' failed"
    assert (entry["workflow"], entry["instance"], entry["step"], entry["attempt"]) == ("billing", "inv-1", "charge", 2)
