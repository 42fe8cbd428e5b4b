"""Adapters of the gateway: upload parsing and database notifications."""
