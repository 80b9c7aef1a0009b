"""An APNs provider-API simulator (HTTP/2, token auth) for legacy Safari website push."""

from clarion.simulator.apns.credentials import ProviderKey
from clarion.simulator.apns.model import REASONS, ApnsBehaviour, ApnsNotification, ApnsStats
from clarion.simulator.apns.server import ApnsSimulator
from clarion.simulator.apns.tls import SimulatorCertificate

__all__ = [
    "REASONS",
    "ApnsBehaviour",
    "ApnsNotification",
    "ApnsSimulator",
    "ApnsStats",
    "ProviderKey",
    "SimulatorCertificate",
]
