"""Every shell command the README shows runs as shown, against the demo.

Each ```bash block is run in order by bash (-e: any failing command fails the test; curl
is called with -f, so an HTTP error fails too), from the checkout, against a live server
and a real worker with the demo's people and instances. PORT points the commands at the
live server, as it points them at ./scripts/demo. A block the test cannot run (it starts a
server, needs a database server of yours, or is a deployment) is marked just above it with
``<!-- readme-test: not run (why) -->``; every other block runs.
"""

import os
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCK = re.compile(
    r"(?:<!-- readme-test: not run \((?P<why>[^)]+)\) -->\n[ \t]*)?```bash\n(?P<body>.*?)\n[ \t]*```", re.S
)


# What the trigger block creates that the next blocks answer: they must be waiting first.
TRIGGERED_WAITS = (("expense", "taxi-1"), ("order", "order-8"), ("approval", "req-1"))


def blocks():
    """(line number, commands, why not run or None) of each bash block, in order."""
    text = README.read_text()
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        yield line, match.group("body"), match.group("why")


def test_every_bash_block_runs_or_says_why_not():
    found = list(blocks())
    runnable = [line for line, _, why in found if why is None]
    assert len(found) == README.read_text().count("```bash"), "a bash block the pattern does not see"
    assert len(runnable) >= 3, f"the CLI, HTTP and trigger blocks should run; runnable blocks at lines {runnable}"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_readme_commands_run_as_shown_against_the_demo(live_server, worker_runner, tmp_path, monkeypatch):
    from workflows import approvals, demo, get_workflow
    from workflows.testing import database_url

    monkeypatch.setattr(demo, "LOGIN_FILE", tmp_path / "demo-login.txt")  # not the checkout's own demo login
    port = live_server.url.rsplit(":", 1)[1]
    demo.setup_demo(StringIO(), int(port))
    worker_runner.wait(
        lambda: {"demo-expense-19", "demo-sunset"} <= {r.instance_id for r in approvals.pending()},
        "the demo's approval requests to open",
        60,
    )
    env = {
        **os.environ,
        "PORT": port,
        "DATABASE_URL": database_url(),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)  # as a user runs them: the project's own settings
    ran = 0
    for line, body, why in blocks():
        if why is not None:
            continue
        result = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", body], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, (
            f"README.md line {line}: a command failed\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
        ran += 1
        if "workflows trigger" in body:
            # Let the worker reach the waits the next blocks answer.
            worker_runner.wait(
                lambda: all(get_workflow(w).get(i).status()["status"] == "waiting" for w, i in TRIGGERED_WAITS),
                "the triggered instances to wait",
                60,
            )
    assert ran >= 3
    worker_runner.wait(
        lambda: get_workflow("expense").get("taxi-1").status()["status"] == "complete", "taxi-1 to be paid", 60
    )
    assert get_workflow("expense").get("taxi-1").status()["output"]["approved_by"] == ["ada"]
    worker_runner.wait(lambda: get_workflow("order").get("order-8").status()["status"] == "complete", "order-8", 60)
    worker_runner.wait(
        lambda: get_workflow("flaky-export").get("demo-export").status()["status"] == "complete", "export", 60
    )
    cohort = [get_workflow("flaky-export").get(f"demo-export-night-{n}") for n in range(1, 7)]
    worker_runner.wait(lambda: all(h.status()["status"] == "complete" for h in cohort), "the retried cohort", 60)
    expense = next(r for r in approvals.pending() if r.instance_id == "demo-expense-19")
    assert [d.by for d in expense.decisions] == ["ada"], "the API decided the laptop's first signature"
