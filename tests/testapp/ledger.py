"""A side-effect ledger that survives replays and worker processes: one file per instance.

Step callbacks call ``record``; tests count entries. Appends are single O_APPEND writes, so
concurrent processes never interleave lines.
"""

import json
import os
import tempfile
import time


def ledger_dir() -> str:
    return os.environ.setdefault("TEST_LEDGER_DIR", tempfile.mkdtemp(prefix="wf-ledger-"))


def record(instance_id: str, event: str, **data):
    entry = {"ev": event, "t": time.time(), "pid": os.getpid(), **data}
    fd = os.open(os.path.join(ledger_dir(), f"{instance_id}.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (json.dumps(entry, default=repr) + "\n").encode())
    finally:
        os.close(fd)


def read(instance_id: str, event: str | None = None) -> list[dict]:
    try:
        with open(os.path.join(ledger_dir(), f"{instance_id}.log")) as fh:
            entries = [json.loads(line) for line in fh if line.strip()]
    except FileNotFoundError:
        return []
    return [e for e in entries if event is None or e["ev"] == event]


def count(instance_id: str, event: str) -> int:
    return len(read(instance_id, event))
