"""`pixtools-contracts`: record schemas and the AsyncAPI document after a compatible change."""

import argparse
import json
from pathlib import Path

from pixtools_contracts._asyncapi import asyncapi_document
from pixtools_contracts._schemas import write_schemas

ASYNCAPI_PATH = Path(__file__).parent / "asyncapi.json"


def main() -> None:
    """Write schemas/*.json and asyncapi.json next to the package sources."""
    parser = argparse.ArgumentParser(prog="pixtools-contracts")
    parser.add_argument("command", choices=["write"], help="write: record schemas and the AsyncAPI document")
    parser.parse_args()
    names = write_schemas()
    ASYNCAPI_PATH.write_text(json.dumps(asyncapi_document(), indent=2, sort_keys=True) + "\n")
    print(f"recorded {len(names)} schemas and {ASYNCAPI_PATH.name}")
