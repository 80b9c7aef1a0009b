"""The segment service: a site's browser subscribers (registration, state, reachability)."""
