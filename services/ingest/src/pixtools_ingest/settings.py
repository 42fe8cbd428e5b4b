"""Ingest settings."""

import os
from typing import Annotated

from pydantic import Field

from pixtools_platform.settings import CidrList, CommonSettings

Port = Annotated[int, Field(ge=1, le=65535)]


class IngestSettings(CommonSettings):
    """Settings of the ingest worker (PIXTOOLS_* variables)."""

    ops_port: int = 9101
    max_pixels: int = Field(default=50_000_000, ge=1, description="Largest decoded image accepted, in pixels.")
    cpu_workers: int = Field(default_factory=lambda: os.cpu_count() or 2, ge=1, description="Threads for image work.")
    fetch_allow_cidrs: CidrList = Field(
        default_factory=list,
        description="Private networks source URLs may reach anyway, on any port (the local stack: 127.0.0.0/8).",
    )
    fetch_allow_ports: list[Port] = Field(
        default_factory=lambda: [80, 443], min_length=1, description="Ports source URLs may use, as a JSON list."
    )
    fetch_max_bytes: int = Field(default=25 * 1024 * 1024, ge=1, description="Largest source body accepted, in bytes.")
    fetch_connect_timeout_s: float = Field(default=5.0, gt=0, description="Deadline for connecting to a source.")
    fetch_total_timeout_s: float = Field(
        default=30.0, gt=0, description="Deadline for one whole fetch attempt, redirects and body included."
    )
    fetch_attempts: int = Field(
        default=3, ge=1, le=10, description="Fetch attempts per source when failures are transient."
    )
    fetch_backoff_s: float = Field(
        default=0.5, ge=0, description="Wait before the second attempt; it doubles per attempt, with jitter."
    )
