"""Adapters: Postgres through SQLAlchemy, and webhooks over HTTP."""
