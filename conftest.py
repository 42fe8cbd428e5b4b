"""Shared fixtures for every package's tests: real infrastructure, found or started."""

pytest_plugins = ["pixtools_testkit.fixtures"]
