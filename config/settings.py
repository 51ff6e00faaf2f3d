"""Settings for the durable-workflows project.

Zero configuration gives a SQLite database under ./var, good for the demo and for one
machine. Set DATABASE_URL=postgres://user:pass@host:5432/name for PostgreSQL, which is what
several worker machines sharing one database need.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from dj_database_url import DBConfig

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: str) -> bool:
    return os.getenv(name, default).strip().lower() in ("1", "true", "yes", "on")


def envint(name: str, default: str) -> int:
    return int(os.getenv(name, default))


def checkout_secret_key() -> str:
    """A random key generated once per checkout and kept in var/ (never a published default).

    Created atomically, so a web process and workers starting together agree on one key.
    """
    import secrets
    import time

    path = BASE_DIR / "var" / "secret-key"
    path.parent.mkdir(exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # another process is writing it: read it once it is there
            key = path.read_text().strip()
            if key:
                return key
            time.sleep(0.02)
        raise ImproperlyConfigured(f"{path} is empty: delete it and start again") from None
    key = secrets.token_urlsafe(50)
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    return key


# PRODUCTION=1 turns the development defaults into errors: the process refuses to start
# with DEBUG on, without its own SECRET_KEY, without ALLOWED_HOSTS or with insecure cookies,
# and turns on HTTPS redirects, HSTS and secure cookies.
PRODUCTION = envbool("PRODUCTION", "false")
SECRET_KEY = os.getenv("SECRET_KEY") or ("" if PRODUCTION else checkout_secret_key())
DEBUG = envbool("DEBUG", "false" if PRODUCTION else "true")
ALLOWED_HOSTS = [
    h for h in os.getenv("ALLOWED_HOSTS", "" if PRODUCTION else "localhost,127.0.0.1,[::1]").split(",") if h
]

if PRODUCTION:
    if DEBUG:
        raise ImproperlyConfigured("PRODUCTION is set but DEBUG is on: unset DEBUG (it leaks settings and tracebacks)")
    if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
        raise ImproperlyConfigured(
            "PRODUCTION is set: SECRET_KEY must be a random secret of at least 50 characters "
            "(python -c 'import secrets; print(secrets.token_urlsafe(50))')"
        )
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("PRODUCTION is set: ALLOWED_HOSTS must list the host names the site is served on")
    if not envbool("SECURE_COOKIES", "true"):
        raise ImproperlyConfigured(
            "PRODUCTION is set with SECURE_COOKIES=false: session and CSRF cookies would travel over plain HTTP; "
            "serve the site over HTTPS (a TLS proxy is fine, see SECURE_PROXY_SSL_HEADER)"
        )
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    # HTTPS only: plain HTTP is redirected (not the health and metrics probes of a load
    # balancer), and browsers are told to use HTTPS for a year (HSTS).
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "true")
    SECURE_REDIRECT_EXEMPT = [r"^health/$", r"^metrics$"]
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", "31536000")
    SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", "true")
    SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", "true")
    if os.getenv("SECURE_PROXY_SSL_HEADER"):
        # Behind a TLS-terminating proxy that sets e.g. X-Forwarded-Proto: https.
        SECURE_PROXY_SSL_HEADER = (os.environ["SECURE_PROXY_SSL_HEADER"], "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"

# Content-Security-Policy (django-csp), in every mode so the browser tests see what
# production sends: scripts, styles and images from this site only; htmx talks to 'self'.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "csp",
    "axes",
    "django_q",
    "workflows",
    "api",
    "dashboard",
]
# The example workflows and their demo data source: on for the demo and development, off in
# production unless asked for (they are samples, not features).
EXAMPLES = envbool("WORKFLOWS_EXAMPLES", "false" if PRODUCTION else "true")
if EXAMPLES:
    INSTALLED_APPS.append("examples")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "config.middleware.RejectBadInput",
    "config.replica.ReplicaReads",  # before anything reads: sessions, users, views
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
    "dashboard.middleware.ActingUser",
    # Last, as django-axes asks: it answers a locked-out login with its lockout response.
    "axes.middleware.AxesMiddleware",
]

# Login throttling (django-axes): after 5 failed logins for one username from one address,
# that pair is locked out for 15 minutes; every failure is recorded (admin: Axes).
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", "5")
AXES_COOLOFF_TIME = float(os.getenv("LOGIN_LOCKOUT_HOURS", "0.25"))  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_IPWARE_PROXY_COUNT = envint("PROXY_COUNT", "0")  # how many trusted proxies set X-Forwarded-For
# Failed API token authentications from one address in 5 minutes before it gets 429s (api.throttle).
API_TOKEN_FAILURE_LIMIT = envint("API_TOKEN_FAILURE_LIMIT", "20")

# Passwords set through Django (createsuperuser, the admin, changepassword) must not be weak.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

ROOT_URLCONF = "config.urls"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:overview"
LOGOUT_REDIRECT_URL = "login"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "dashboard.context_processors.dashboard",
            ],
        },
    },
]


def database_from_url(url: str) -> DBConfig:
    """A Django DATABASES entry from postgres://user:pass@host:port/name or sqlite:////path.

    PostgreSQL: workers hold one connection each for their whole life; health checks make a
    restarted server cost one failed query instead of a dead worker.
    """
    config = dj_database_url.parse(url, conn_max_age=envint("DB_CONN_MAX_AGE", "600"), conn_health_checks=True)
    if config["ENGINE"] == "django.db.backends.sqlite3":
        return sqlite_database(str(config["NAME"]) or str(BASE_DIR / "var" / "db.sqlite3"))
    if config["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            f"DATABASE_URL {url.split(':', 1)[0]}:// is not supported (use postgres:// or sqlite:///)"
        )
    return config


def sqlite_database(path: str) -> DBConfig:
    """SQLite shared safely by the web process and several worker processes.

    WAL lets readers run beside the one writer; IMMEDIATE transactions take the write lock
    at BEGIN so they wait for the busy timeout instead of failing on lock upgrade.
    synchronous=FULL keeps committed steps across a power loss, which durability promises.
    Connections are kept, as on PostgreSQL: opening one runs those PRAGMAs, 1.8 ms that the
    dispatcher paid on every tick and the fast lane on every wake-up when Django closed
    the connection after each.
    """
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        "CONN_MAX_AGE": envint("DB_CONN_MAX_AGE", "600"),
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
        },
    }


if os.getenv("DATABASE_URL"):
    DATABASES = {"default": database_from_url(os.environ["DATABASE_URL"])}
else:
    (BASE_DIR / "var").mkdir(exist_ok=True)
    DATABASES = {"default": sqlite_database(str(BASE_DIR / "var" / "db.sqlite3"))}

# A read replica for the dashboard's and API's GET requests (config/replica.py); the engine,
# and any request that wrote or follows a write, read the primary. In tests, the replica
# alias mirrors the test database.
READ_REPLICA = None
if os.getenv("DATABASE_REPLICA_URL"):
    DATABASES["replica"] = {**database_from_url(os.environ["DATABASE_REPLICA_URL"]), "TEST": {"MIRROR": "default"}}
    READ_REPLICA = "replica"
READ_REPLICA_PIN_SECONDS = envint("READ_REPLICA_PIN_SECONDS", "10")
DATABASE_ROUTERS = ["config.replica.ReplicaRouter"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.getenv("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
# The project's own static files (stylesheet, scripts, icons) live in the top-level static/.
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
if DEBUG:
    STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"},
        # LOG_FORMAT=json: one JSON object a line, with workflow, instance and step fields.
        "json": {"()": "workflows.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": os.getenv("LOG_FORMAT", "plain")}},
    "root": {"handlers": ["console"], "level": os.getenv("LOG_LEVEL", "INFO")},
    "loggers": {
        "django-q": {"level": os.getenv("Q_LOG_LEVEL", "WARNING")},
        # runserver's access log: one line per request would be one per live-update poll;
        # failed requests (4xx, 5xx) are still logged.
        "django.server": {"level": os.getenv("ACCESS_LOG_LEVEL", "WARNING")},
    },
}

# `manage.py workflows demo` calls this to start the example instances.
WORKFLOWS_DEMO_STARTER = "examples.demo.start_examples" if EXAMPLES else None

# Mail from workflows (the EMAIL binding): printed to the console unless configured.
EMAIL_BACKEND = os.getenv("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.getenv("DEFAULT_FROM_EMAIL", "workflows@localhost")
EMAIL_FILE_PATH = os.getenv("EMAIL_FILE_PATH", str(BASE_DIR / "var" / "mail"))  # the file backend's folder
EMAIL_HOST = os.getenv("EMAIL_HOST", "localhost")  # for the SMTP backend
EMAIL_PORT = envint("EMAIL_PORT", "25")
EMAIL_HOST_USER = os.getenv("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.getenv("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", "false")

# To describe images with a real vision model, point the AI binding at an OpenAI-compatible
# endpoint, e.g. a local Ollama serving llava (WORKFLOWS_AI_URL=http://127.0.0.1:11434/v1).
AI_URL = os.getenv("WORKFLOWS_AI_URL")

# The engine. Every key is optional; workflows/conf.py documents each default.
WORKFLOWS: dict[str, Any] = {
    "BINDINGS": {
        "BUCKET": {
            "BACKEND": "workflows.bindings.bucket.StorageBucket",
            "OPTIONS": {"location": os.getenv("WORKFLOWS_BUCKET_DIR", str(BASE_DIR / "var" / "bucket"))},
        },
        "DB": {"BACKEND": "workflows.bindings.sql.Database", "OPTIONS": {"alias": "default"}},
        "AI": {"BACKEND": "workflows.bindings.ai.OfflineAI"},
        "EMAIL": {"BACKEND": "workflows.bindings.email.DjangoEmail"},
        # Fetching URLs from steps: public addresses only, except the hosts listed (the demo
        # serves its data source itself, on loopback; production lists none by default).
        "HTTP": {
            "BACKEND": "workflows.bindings.http.SafeHTTP",
            "OPTIONS": {
                "allowed_hosts": [
                    h.strip()
                    for h in os.getenv(
                        "WORKFLOWS_HTTP_ALLOWED_HOSTS", "" if PRODUCTION else "127.0.0.1,localhost"
                    ).split(",")
                    if h.strip()
                ]
            },
        },
        "CHILD_WORKFLOW": {"BACKEND": "workflows.bindings.workflow.WorkflowBinding", "OPTIONS": {"name": "child"}},
    },
    "WORKERS": envint("WORKFLOWS_WORKERS", "2"),
    "LEASE_SECONDS": float(os.getenv("WORKFLOWS_LEASE_SECONDS", "20")),
    "TEST_OVERRIDES": envbool("WORKFLOWS_TEST_OVERRIDES", "false"),
    # Approval notifications: who is told how (comma-separated notifier paths), and the
    # dashboard's address for the decision links they carry.
    "APPROVAL_NOTIFIERS": [
        path.strip()
        for path in os.getenv("WORKFLOWS_APPROVAL_NOTIFIERS", "workflows.notifiers.EmailNotifier").split(",")
        if path.strip()
    ],
    "BASE_URL": os.getenv("WORKFLOWS_BASE_URL", "http://127.0.0.1:8000"),
    "APPROVAL_WEBHOOK_URL": os.getenv("WORKFLOWS_APPROVAL_WEBHOOK_URL", ""),
    "APPROVAL_WEBHOOK_SECRET": os.getenv("WORKFLOWS_APPROVAL_WEBHOOK_SECRET", ""),
    "NOTIFY_RETRY_SECONDS": float(os.getenv("WORKFLOWS_NOTIFY_RETRY_SECONDS", "30")),
    # Versions (workflows.versions): this deployment's name, whether workers only advance
    # instances of their own code's versions (blue-green), and what a divergence does.
    "DEPLOYMENT": os.getenv("WORKFLOWS_DEPLOYMENT", ""),
    "PIN_VERSIONS": envbool("WORKFLOWS_PIN_VERSIONS", "false"),
    "ON_DIVERGENCE": os.getenv("WORKFLOWS_ON_DIVERGENCE", "warn"),
    # OpenTelemetry traces (pip install .[otel]): "otlp", "console" or "file:<path>".
    "TRACING": os.getenv("WORKFLOWS_TRACING", ""),
    "TRACE_URL": os.getenv("WORKFLOWS_TRACE_URL", ""),
}
if WORKFLOWS["PIN_VERSIONS"] and not WORKFLOWS["DEPLOYMENT"]:
    raise ImproperlyConfigured("WORKFLOWS_PIN_VERSIONS needs WORKFLOWS_DEPLOYMENT: the name of this deployment")

if AI_URL:
    WORKFLOWS["BINDINGS"]["AI"] = {
        "BACKEND": "workflows.bindings.ai.OpenAICompatibleAI",
        "OPTIONS": {
            "base_url": AI_URL,
            "api_key": os.getenv("WORKFLOWS_AI_KEY", ""),
            "model_map": {"@cf/llava-hf/llava-1.5-7b-hf": os.getenv("WORKFLOWS_AI_MODEL", "llava")},
        },
    }

# The queue that carries "advance instance N" kicks: the database by default (a kick commits
# with the change that made the instance runnable), or Redis (WORKFLOWS_BROKER=redis): kicks
# are pushed after commit, and a kick lost in between is re-sent by the dispatcher. Workflow
# state stays in the database either way. Pinned deployments each get their own queue.
QUEUE_NAME = os.getenv("WORKFLOWS_QUEUE_NAME", "workflows")
if WORKFLOWS["PIN_VERSIONS"]:
    QUEUE_NAME = f"{QUEUE_NAME}-{WORKFLOWS['DEPLOYMENT']}"
WORKFLOWS["BROKER"] = os.getenv("WORKFLOWS_BROKER", "database")
if WORKFLOWS["BROKER"] not in ("database", "redis"):
    raise ImproperlyConfigured(f'WORKFLOWS_BROKER must be "database" or "redis", got {WORKFLOWS["BROKER"]!r}')

# django-q2 is the executor: its workers run "advance this instance" tasks. Our own tables
# are the source of truth (django-q2 can redeliver or duplicate a task), so its retries are
# switched off and a long visibility timeout only guards against a whole cluster vanishing;
# the engine's dispatcher re-kicks abandoned instances itself.
Q_CLUSTER = {
    # Pinned deployments each get their own queue: a deployment's kicks reach its own workers.
    "name": QUEUE_NAME,
    "orm": "default",
    "workers": WORKFLOWS["WORKERS"],
    "queue_limit": WORKFLOWS["WORKERS"],
    "bulk": 1,
    "poll": 0.05,
    "timeout": 7200,
    "retry": 7260,
    "max_attempts": 1,
    "ack_failures": True,
    "save_limit": -1,
    "catch_up": False,
    "label": "Task queue",
    # On PostgreSQL, kicks wake the pusher at once (LISTEN/NOTIFY) instead of waiting a poll.
    "broker_class": "workflows.engine.broker.NotifyingORM",
    "log_level": os.getenv("Q_LOG_LEVEL", "WARNING"),
}
if WORKFLOWS["BROKER"] == "redis":
    del Q_CLUSTER["orm"], Q_CLUSTER["broker_class"]
    Q_CLUSTER["redis"] = os.getenv("REDIS_URL", "redis://127.0.0.1:6379/0")
