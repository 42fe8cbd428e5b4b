"""Every console script a package declares points at a function that exists: a rename cannot orphan one."""

import importlib
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = {
    name: target
    for project in sorted(ROOT.glob("*/*/pyproject.toml"))
    for name, target in tomllib.loads(project.read_text()).get("project", {}).get("scripts", {}).items()
}


def test_the_services_and_tools_declare_their_commands():
    assert {"pixtools-gateway", "pixtools-admin", "pixtools-ingest", "pixtools-aggregator", "pixtools-demo"} <= set(
        SCRIPTS
    )


@pytest.mark.parametrize(("name", "target"), sorted(SCRIPTS.items()))
def test_console_script_resolves_to_a_function(name, target):
    module_name, _, attribute = target.partition(":")
    function = getattr(importlib.import_module(module_name), attribute, None)
    assert callable(function), f"{name} = {target} names nothing callable"
