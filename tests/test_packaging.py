"""What `pip install .` ships, and what production mode serves: templates and static files."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    leftover = not (ROOT / "build").exists()
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
            check=True,
            capture_output=True,
        )
    finally:
        if leftover:  # setuptools builds in ./build; leave the checkout as it was
            shutil.rmtree(ROOT / "build", ignore_errors=True)
    (built,) = out.glob("*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_ships_every_template_and_static_file(wheel):
    shipped = set(wheel.namelist())
    for folder in ("templates", "static"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file():
                assert path.relative_to(ROOT).as_posix() in shipped, f"{path.relative_to(ROOT)} is not in the wheel"
    assert "config/settings.py" in shipped and "workflows/engine/replay.py" in shipped


def test_production_mode_collects_static_files_and_whitenoise_serves_them(tmp_path):
    env = {
        **os.environ,
        "PRODUCTION": "1",
        "SECRET_KEY": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        "ALLOWED_HOSTS": "testserver",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "STATIC_ROOT": str(tmp_path / "static"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    env.pop("DEBUG", None)
    script = (
        "import django; django.setup()\n"
        "from django.core.management import call_command\n"
        "call_command('collectstatic', '--noinput', verbosity=0)\n"
        "from django.templatetags.static import static\n"
        "from django.test import Client\n"
        "url = static('dashboard/dashboard.css')\n"
        "assert '.css' in url and url != '/static/dashboard/dashboard.css', url  # hashed by the manifest\n"
        "response = Client().get(url, secure=True)\n"
        "body = b''.join(response.streaming_content) if response.streaming else response.content\n"
        "assert response.status_code == 200 and b'--bg' in body, response.status_code\n"
        "print('served', url)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "served /static/dashboard/dashboard." in result.stdout
