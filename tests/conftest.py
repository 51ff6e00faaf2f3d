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


@pytest.fixture
def runner(tmp_path, settings):
    """Real ``workflows worker`` trees for this test, stopped after it (modules with other
    needs define their own ``runner``)."""
    from workflows.testing import WorkerRunner

    settings.WORKFLOWS = {**settings.WORKFLOWS, "ENQUEUE": True}
    runner = WorkerRunner(tmp_path)
    yield runner
    runner.stop()
