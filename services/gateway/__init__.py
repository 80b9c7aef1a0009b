"""The browser-facing HTTP gateway (aiohttp): SDK endpoints in front of the gRPC services."""
