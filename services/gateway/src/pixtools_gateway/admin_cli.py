"""`pixtools-admin`: migrations, tenants and keys from the command line."""

import argparse
import asyncio

from pixtools_db import create_engine, session_factory, upgrade
from pixtools_gateway.handlers.tenants import add_api_key, create_tenant, ensure_dev_tenant
from pixtools_gateway.settings import GatewaySettings


async def _create_tenant(settings: GatewaySettings, name: str) -> str:
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with session_factory(engine).begin() as session:
            tenant, key = await create_tenant(session, name=name)
        print(f"tenant {tenant.name} created with id {tenant.id}")
        print("API key (shown once):")
        return key
    finally:
        await engine.dispose()


async def _create_admin_key(settings: GatewaySettings) -> str:
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with session_factory(engine).begin() as session:
            key = await add_api_key(session, tenant_id=None, scope="admin")
        print("admin API key (shown once):")
        return key
    finally:
        await engine.dispose()


async def _seed_dev(settings: GatewaySettings) -> str:
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with session_factory(engine).begin() as session:
            tenant_id = await ensure_dev_tenant(session, key=settings.dev_api_key)
        return f"development tenant {tenant_id} accepts the key from PIXTOOLS_DEV_API_KEY"
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> None:
    """Run one admin command; a created key is the last line printed."""
    parser = argparse.ArgumentParser(prog="pixtools-admin", description="PixTools administration.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="create the database if needed and apply every migration")
    tenant = commands.add_parser("create-tenant", help="create a tenant and print its first API key")
    tenant.add_argument("name")
    commands.add_parser("create-admin-key", help="create an admin API key and print it")
    commands.add_parser("seed-dev", help="create the local development tenant with PIXTOOLS_DEV_API_KEY")
    args = parser.parse_args(argv)
    settings = GatewaySettings()
    if args.command == "migrate":
        upgrade(settings.database_url)
        print("database is at the latest migration")
    elif args.command == "create-tenant":
        print(asyncio.run(_create_tenant(settings, args.name)))
    elif args.command == "create-admin-key":
        print(asyncio.run(_create_admin_key(settings)))
    elif args.command == "seed-dev":
        if settings.env == "production":
            parser.error("seed-dev is for local stacks only")
        print(asyncio.run(_seed_dev(settings)))
