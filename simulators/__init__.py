"""Fake providers with fault injection: payments, catalog and notifications. Never imported by `app/`."""
