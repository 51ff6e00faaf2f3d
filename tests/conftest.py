import os
import tempfile
import uuid

import pytest

os.environ.setdefault("TEST_LEDGER_DIR", tempfile.mkdtemp(prefix="wf-ledger-"))


@pytest.fixture
def engine(db):
    """The in-process engine on a clean clock: create instances, then ``run_until_idle``."""
    from workflows import clock, metrics

    clock.reset()
    metrics.discard()  # counts buffered by an earlier test belong to its rolled-back database
    yield
    clock.reset()


@pytest.fixture
def uid():
    return lambda prefix="i": f"{prefix}-{uuid.uuid4().hex[:10]}"
