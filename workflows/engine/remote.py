"""A fan-out worker's run of someone else's instance (see ``engine.fanout``).

It claimed some handed-out steps under a step lease; it replays ``run()`` only to reach and
execute those steps, parks every other branch, and never writes to the instance itself:
the coordinating worker still holds the instance's lease and decides what happens next.
"""

from __future__ import annotations

from typing import Any

from workflows.engine.bridge import DatabaseBridge
from workflows.engine.leases import StepLease, release_steps
from workflows.engine.replay import InstanceRun, ReplayPass
from workflows.engine.rows import Claim, StepKey
from workflows.states import StepStatus


class RemoteRun(InstanceRun):
    """A fan-out worker's run: replays only to execute its claimed steps for the coordinator."""

    def __init__(self, claim: Claim[StepLease], bridge: DatabaseBridge, target_keys: set[StepKey]) -> None:
        self.target_keys = set(target_keys)
        super().__init__(claim, bridge)

    def _fanout(self) -> None:
        return None

    def executes(self, key: StepKey) -> bool:
        return key in self.target_keys

    @property
    def records_waits(self) -> bool:
        return False

    def should_hand_back(self) -> bool:
        return False  # the coordinator decides when the instance stops

    async def main(self) -> str:
        if self.workflow_cls is None:
            # This process's code does not know the workflow (a deploy in progress): give the
            # steps back at once so a worker that knows it, or the coordinator, runs them.
            await self.db(release_steps, self.lease)
            return f"workflow {self.instance.workflow_name!r} is not registered in this process; steps released"
        return await self.replay_once()

    async def conclude(self, replay: ReplayPass, outcome: str, value: Any) -> str:
        """The instance itself is not touched: give back unreached steps, report the targets."""
        if any(self.steps[key].status == StepStatus.QUEUED for key in self.target_keys):
            await self.db(release_steps, self.lease)
        return ", ".join(sorted(f"{key[1]}: {self.steps[key].status}" for key in self.target_keys))
