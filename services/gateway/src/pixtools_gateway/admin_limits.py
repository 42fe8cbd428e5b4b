"""`pixtools-admin set-limits` and `show-limits`: a tenant's own rate limits and unfinished-jobs quota."""

import argparse
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pixtools_db import Tenant
from pixtools_gateway.handlers.limits import Limits, Overrides, read_overrides, write_overrides
from pixtools_gateway.settings import GatewaySettings

# Option name, override column, and what the option sets.
LIMIT_OPTIONS = (
    ("--submissions-per-s", "submissions_per_s", "jobs submitted per second (batch items count one each)"),
    ("--reads-per-s", "reads_per_s", "other requests per second"),
    ("--streams", "streams", "progress streams open at once"),
    ("--unfinished-jobs", "unfinished_jobs", "jobs accepted or running at once"),
)


class TenantNotFound(LookupError):
    """No tenant has that name or id."""


def limit_value(text: str) -> int | None:
    """A positive whole number, or `default` to drop the override."""
    if text == "default":
        return None
    if not text.isdigit() or not 0 < int(text) <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to 1000000, or 'default'")
    return int(text)


def add_limit_commands(commands: Any) -> None:
    """Add `set-limits` and `show-limits` to the admin parser's subcommands."""
    setter = commands.add_parser("set-limits", help="set a tenant's own limits ('default' drops one)")
    setter.add_argument("tenant", help="the tenant's name or id")
    for option, column, about in LIMIT_OPTIONS:
        setter.add_argument(option, dest=column, type=limit_value, default=argparse.SUPPRESS, help=about)
    shower = commands.add_parser("show-limits", help="show the limits a tenant is held to")
    shower.add_argument("tenant", help="the tenant's name or id")


def changes_of(args: argparse.Namespace) -> dict[str, int | None]:
    """The overrides a `set-limits` command line names."""
    return {column: getattr(args, column) for _, column, _ in LIMIT_OPTIONS if hasattr(args, column)}


async def set_limits(session: AsyncSession, tenant: str, changes: dict[str, int | None], defaults: Limits) -> str:
    """Store the overrides and describe the limits now in force."""
    tenant_id = await _tenant_id(session, tenant)
    await write_overrides(session, tenant_id=tenant_id, changes=changes)
    return describe(tenant, await read_overrides(session, tenant_id=tenant_id), defaults)


async def show_limits(session: AsyncSession, tenant: str, defaults: Limits) -> str:
    """Describe the limits in force for a tenant, and which are its own."""
    tenant_id = await _tenant_id(session, tenant)
    return describe(tenant, await read_overrides(session, tenant_id=tenant_id), defaults)


def defaults_of(settings: GatewaySettings) -> Limits:
    """The limits a tenant without overrides is held to."""
    return Limits(
        submissions_per_s=settings.submissions_per_s,
        reads_per_s=settings.reads_per_s,
        streams=settings.streams_per_tenant,
        unfinished_jobs=settings.unfinished_jobs_quota,
    )


def describe(tenant: str, overrides: Overrides, defaults: Limits) -> str:
    """One line per limit: its value and whether it is the tenant's own or the default."""
    in_force = overrides.applied_to(defaults)
    lines = [f"limits of tenant {tenant} (changes apply within the gateway's limits cache):"]
    for _, column, _ in LIMIT_OPTIONS:
        source = "own" if getattr(overrides, column) is not None else "default"
        lines.append(f"  {column}: {getattr(in_force, column)} ({source})")
    return "\n".join(lines)


async def _tenant_id(session: AsyncSession, tenant: str) -> uuid.UUID:
    try:
        by_id = Tenant.id == uuid.UUID(tenant)
    except ValueError:
        by_id = None
    found = await session.scalar(select(Tenant.id).where(by_id if by_id is not None else Tenant.name == tenant))
    if found is None:
        raise TenantNotFound(f"no tenant named {tenant!r}")
    return found
