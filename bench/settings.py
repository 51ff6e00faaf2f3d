"""Settings for the benchmarks: the project's settings plus the benchmark workflows.

A benchmark run makes its own database (see bench/common.py); DATABASE_URL points at it.
"""

from config.settings import *  # noqa: F401,F403
from config.settings import ALLOWED_HOSTS, INSTALLED_APPS, LOGGING

# Measured as deployed: DEBUG keeps every query and formats it for the log, which cost
# the worker a fifth of its time per statement.
DEBUG = False
ALLOWED_HOSTS = [*ALLOWED_HOSTS, "testserver"]

INSTALLED_APPS = [*INSTALLED_APPS, "bench.benchapp"]
LOGGING = {**LOGGING, "root": {"handlers": ["console"], "level": "WARNING"}}
