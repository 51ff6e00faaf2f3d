"""Settings for the project's own test suite.

SQLite by default (a file, not memory, so real worker processes started by the tests see
the same data); PostgreSQL when DATABASE_URL is set. Tests run instances in-process unless
they start workers, so kicks are off by default.
"""

import os
import tempfile

# Shared with the worker processes tests start (they inherit the environment).
os.environ.setdefault("WORKFLOWS_BUCKET_DIR", tempfile.mkdtemp(prefix="wf-bucket-"))
os.environ.setdefault("TEST_EMAIL_DIR", tempfile.mkdtemp(prefix="wf-mail-"))

from config.settings import *  # noqa: E402,F401,F403
from config.settings import DATABASES, INSTALLED_APPS, STORAGES, WORKFLOWS  # noqa: E402

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["TEST"] = {
        "NAME": os.getenv(
            "TEST_SQLITE_PATH", os.path.join(tempfile.gettempdir(), f"workflows-test-{os.getpid()}.sqlite3")
        )
    }

# A second alias on the same test database stands in for a read replica; tests that exercise
# it turn READ_REPLICA on (tests/test_replica.py), the rest read the primary only.
DATABASES["replica"] = {**DATABASES["default"], "TEST": {"MIRROR": "default"}}
READ_REPLICA = None

WORKFLOWS = {**WORKFLOWS, "ENQUEUE": os.getenv("WORKFLOWS_ENQUEUE", "0") == "1"}
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Mail goes to files, so tests see what worker processes sent.
EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = os.environ["TEST_EMAIL_DIR"]

# The suite sends many bad tokens on purpose (tests/test_hardening.py sets the real limit).
API_TOKEN_FAILURE_LIMIT = 1_000_000
