"""Settings for the project's own test suite.

SQLite by default (a file, not memory, so real worker processes started by the tests see
the same data); PostgreSQL when DATABASE_URL is set. Tests run instances in-process unless
they start workers, so kicks are off by default.
"""
import os
import tempfile

from config.settings import *  # noqa: F401,F403
from config.settings import DATABASES, INSTALLED_APPS, STORAGES, WORKFLOWS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["TEST"] = {
        "NAME": os.getenv("TEST_SQLITE_PATH", os.path.join(tempfile.gettempdir(), f"workflows-test-{os.getpid()}.sqlite3"))
    }

WORKFLOWS = {**WORKFLOWS, "ENQUEUE": os.getenv("WORKFLOWS_ENQUEUE", "0") == "1"}
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
