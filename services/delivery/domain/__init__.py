"""Delivery's rules: run lifecycle (runs), push answers (rules), payload, encryption, sending
and the workers that tie them together."""
