"""Test fixtures for PixTools: real infrastructure on loopback, found or started."""
