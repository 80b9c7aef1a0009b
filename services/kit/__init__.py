"""The thin shared kit: settings, clock, errors, logging, auth, gRPC and database bootstrap.

Nothing here knows a service's domain; services import the kit, never each other.
"""
