"""The campaign service: sites (tenants, API keys, VAPID keys), campaigns and their runs."""
