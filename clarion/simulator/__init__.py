"""A push-service simulator (RFC 8030/8291/8292) that tests, the demo and benchmarks deliver to."""

from clarion.simulator.app import PushServiceSimulator
from clarion.simulator.model import (
    Behaviour,
    ConformanceProblem,
    Problem,
    ReceivedMessage,
    SimulatedSubscription,
    SimulatorStats,
)

__all__ = [
    "Behaviour",
    "ConformanceProblem",
    "Problem",
    "PushServiceSimulator",
    "ReceivedMessage",
    "SimulatedSubscription",
    "SimulatorStats",
]
