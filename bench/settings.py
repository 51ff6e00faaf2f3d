"""Settings for the benchmarks: the project's settings plus the benchmark workflows.

A benchmark run makes its own database (see bench/common.py); DATABASE_URL points at it.
"""

from config.settings import *  # noqa: F401,F403
from config.settings import INSTALLED_APPS, LOGGING

INSTALLED_APPS = [*INSTALLED_APPS, "bench.benchapp"]
LOGGING = {**LOGGING, "root": {"handlers": ["console"], "level": "WARNING"}}
