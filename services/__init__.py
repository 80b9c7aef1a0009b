"""Clarion's services: one package each, sharing only the kit and the protos."""
