"""Reporting's peers over gRPC (segment's event feed, for conversions)."""
