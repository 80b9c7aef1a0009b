"""Test helpers shared by the suites (never imported by services)."""
