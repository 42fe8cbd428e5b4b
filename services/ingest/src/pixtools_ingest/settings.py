"""Ingest settings."""

import os

from pydantic import Field

from pixtools_platform.settings import CommonSettings


class IngestSettings(CommonSettings):
    """Settings of the ingest worker (PIXTOOLS_* variables)."""

    ops_port: int = 9101
    max_pixels: int = Field(default=50_000_000, ge=1, description="Largest decoded image accepted, in pixels.")
    cpu_workers: int = Field(default_factory=lambda: os.cpu_count() or 2, ge=1, description="Threads for image work.")
