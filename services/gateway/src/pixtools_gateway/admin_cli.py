"""`pixtools-admin`: migrations, tenants and keys from the command line.

Bad input and an unreachable database get one line on stderr and exit status 2, never a traceback: a
traceback of a failed INSERT would carry its parameters, and a tenant's parameters include its webhook
secret. The only secret ever printed is the key a create command was asked for, as the last line.
"""

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from pixtools_db import ApiKey, Tenant, create_engine, session_factory, upgrade
from pixtools_gateway.admin_limits import (
    TenantNotFound,
    add_limit_commands,
    changes_of,
    defaults_of,
    set_limits,
    show_limits,
)
from pixtools_gateway.handlers.api_keys import find_keys, list_all_keys, revoke_key
from pixtools_gateway.handlers.tenants import add_api_key, create_tenant, ensure_dev_tenant
from pixtools_gateway.settings import GatewaySettings

EXIT_BAD_INPUT = 2
Command = Callable[[], Coroutine[Any, Any, str] | str]
"""One admin command: a coroutine to run, or (migrations, which run their own loop) a plain call."""


class AdminError(Exception):
    """A command could not do what it was asked; the message is the one line the operator sees."""


async def _in_transaction(settings: GatewaySettings, work: Callable[[AsyncSession], Awaitable[str]]) -> str:
    """Run `work` in one transaction on a short-lived engine; what it returns is printed only once it committed."""
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with session_factory(engine).begin() as session:
            return await work(session)
    finally:
        await engine.dispose()


async def _create_tenant(session: AsyncSession, name: str) -> str:
    try:
        tenant, key = await create_tenant(session, name=name)
    except IntegrityError as error:
        raise AdminError(f"a tenant named {name!r} already exists; choose another name") from error
    return f"tenant {tenant.name} created with id {tenant.id}\nAPI key (shown once):\n{key}"


async def _create_admin_key(session: AsyncSession) -> str:
    key = await add_api_key(session, tenant_id=None)
    return f"admin API key (shown once):\n{key}"


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "-"


def _key_line(key: ApiKey, tenant: str | None) -> str:
    """One key, tab-separated: never its secret or hash."""
    state = "revoked" if key.revoked_at else "expired" if key.expires_at and key.expires_at <= _now() else "active"
    fields = [str(key.id), key.prefix, tenant or "(admin)", key.name, ",".join(key.scopes), state]
    fields += [_when(key.created_at), _when(key.last_used_at), _when(key.expires_at), _when(key.revoked_at)]
    return "\t".join(fields)


def _now() -> datetime:
    return datetime.now(UTC)


async def _list_keys(session: AsyncSession, tenant: str | None) -> str:
    keys = await list_all_keys(session, tenant_name=tenant)
    if tenant is not None and not keys and await session.scalar(select(Tenant.id).where(Tenant.name == tenant)) is None:
        raise AdminError(f"no tenant is named {tenant!r}")
    header = "id\tprefix\ttenant\tname\tscopes\tstate\tcreated\tlast used\texpires\trevoked"
    return "\n".join([header, *(_key_line(key, name) for key, name in keys)])


async def _revoke_key(session: AsyncSession, id_or_prefix: str) -> str:
    found = await find_keys(session, id_or_prefix=id_or_prefix)
    if not found:
        raise AdminError(f"no API key has the id or prefix {id_or_prefix!r}; see pixtools-admin list-keys")
    if len(found) > 1:
        raise AdminError(f"{len(found)} API keys have the prefix {id_or_prefix!r}; revoke one by its id")
    key = await revoke_key(session, key_id=found[0].id, tenant_id=None)
    assert key is not None
    return f"API key {key.id} ({key.prefix}) revoked at {_when(key.revoked_at)}"


async def _seed_dev(session: AsyncSession, key: str) -> str:
    tenant_id = await ensure_dev_tenant(session, key=key)
    return f"development tenant {tenant_id} accepts the key from PIXTOOLS_DEV_API_KEY"


def _migrate(settings: GatewaySettings) -> str:
    upgrade(settings.database_url)
    return "database is at the latest migration"


def _where(database_url: str) -> str:
    """The database's host, port and name, never its credentials."""
    url = make_url(database_url)
    return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"


def _run(command: Command, settings: GatewaySettings) -> str:
    """Run a command; database trouble and refused input become an AdminError with one readable line."""
    try:
        result = command()
        return asyncio.run(result) if not isinstance(result, str) else result
    except AdminError:
        raise
    except TenantNotFound as error:
        raise AdminError(str(error)) from error
    except (OperationalError, InterfaceError, OSError) as error:
        reason = type(getattr(error, "orig", None) or error).__name__
        raise AdminError(f"cannot reach the database at {_where(settings.database_url)} ({reason})") from error


def main(argv: list[str] | None = None) -> None:
    """Run one admin command; a created key is the last line printed."""
    parser = argparse.ArgumentParser(prog="pixtools-admin", description="PixTools administration.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="create the database if needed and apply every migration")
    tenant = commands.add_parser("create-tenant", help="create a tenant and print its first API key")
    tenant.add_argument("name")
    commands.add_parser("create-admin-key", help="create an admin API key and print it")
    commands.add_parser("seed-dev", help="create the local development tenant with PIXTOOLS_DEV_API_KEY")
    listing = commands.add_parser("list-keys", help="list API keys (never their secrets), tab-separated")
    listing.add_argument("--tenant", metavar="NAME", help="only this tenant's keys")
    revoking = commands.add_parser("revoke-key", help="revoke an API key and its refresh tokens")
    revoking.add_argument("key", metavar="ID_OR_PREFIX", help="the key's id, or its prefix as list-keys shows it")
    add_limit_commands(commands)
    args = parser.parse_args(argv)
    settings = GatewaySettings()
    if args.command == "seed-dev" and settings.env == "production":
        parser.error("seed-dev is for local stacks only")
    name = getattr(args, "name", "")
    if args.command == "create-tenant" and not 0 < len(name.strip()) <= 200:
        parser.error("a tenant name is 1 to 200 characters")
    if args.command == "revoke-key" and not 0 < len(args.key.strip()) <= 100:
        parser.error("give the key's id or its prefix as list-keys shows it")
    if args.command == "set-limits" and not changes_of(args):
        parser.error("name at least one limit to set, e.g. --submissions-per-s 20")
    commands_by_name: dict[str, Command] = {
        "migrate": lambda: _migrate(settings),
        "create-tenant": lambda: _in_transaction(settings, lambda session: _create_tenant(session, name)),
        "create-admin-key": lambda: _in_transaction(settings, _create_admin_key),
        "seed-dev": lambda: _in_transaction(settings, lambda session: _seed_dev(session, settings.dev_api_key)),
        "list-keys": lambda: _in_transaction(settings, lambda session: _list_keys(session, args.tenant)),
        "revoke-key": lambda: _in_transaction(settings, lambda session: _revoke_key(session, args.key.strip())),
        "set-limits": lambda: _in_transaction(
            settings, lambda session: set_limits(session, args.tenant, changes_of(args), defaults_of(settings))
        ),
        "show-limits": lambda: _in_transaction(
            settings, lambda session: show_limits(session, args.tenant, defaults_of(settings))
        ),
    }
    try:
        print(_run(commands_by_name[args.command], settings))
    except AdminError as error:
        print(f"pixtools-admin: {error}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
