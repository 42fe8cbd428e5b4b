"""Adapters: safe HTTP fetching of source URLs."""
