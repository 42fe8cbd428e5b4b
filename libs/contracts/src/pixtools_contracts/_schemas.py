"""JSON Schemas of the contracts and the compatibility rules that guard them."""

import json
from pathlib import Path
from typing import Any

from pixtools_contracts._pipeline import Pipeline
from pixtools_contracts._registry import EVENT_TYPES

SCHEMA_DIR = Path(__file__).parent / "schemas"


def current_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of every event type and of the pipeline, keyed by name."""
    schemas = {name: model.model_json_schema(mode="validation") for name, model in EVENT_TYPES.items()}
    schemas["pipeline.v1"] = Pipeline.model_json_schema(mode="validation")
    return schemas


def committed_schemas(directory: Path = SCHEMA_DIR) -> dict[str, dict[str, Any]]:
    """The schemas recorded in the repository."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))}


def write_schemas(directory: Path = SCHEMA_DIR) -> list[str]:
    """Record the current schemas, refusing any that break a recorded one."""
    recorded = committed_schemas(directory)
    current = current_schemas()
    problems = [
        f"{name}: {problem}"
        for name, schema in current.items()
        if name in recorded
        for problem in breaking_changes(recorded[name], schema)
    ]
    if problems:
        raise IncompatibleSchema("; ".join(problems))
    directory.mkdir(exist_ok=True)
    for name, schema in current.items():
        (directory / f"{name}.json").write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
    return sorted(current)


class IncompatibleSchema(ValueError):
    """A contract change would break readers of an existing version."""


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """List the ways `new` breaks readers or writers of `old`, comparing resolved definitions."""
    return _compare(old, new, old.get("$defs", {}), new.get("$defs", {}), "#", set())


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return dict(defs.get(ref.removeprefix("#/$defs/"), {}))
    return schema


def _types(schema: dict[str, Any]) -> set[str]:
    if "type" in schema:
        kind = schema["type"]
        return set(kind) if isinstance(kind, list) else {kind}
    if "const" in schema:
        return {f"const:{json.dumps(schema['const'])}"}
    if "enum" in schema:
        return {f"const:{json.dumps(value)}" for value in schema["enum"]}
    return set()


def _compare(
    old: dict[str, Any],
    new: dict[str, Any],
    old_defs: dict[str, Any],
    new_defs: dict[str, Any],
    where: str,
    seen: set[tuple[str, str]],
) -> list[str]:
    old, new = _resolve(old, old_defs), _resolve(new, new_defs)
    marker = (json.dumps(old, sort_keys=True), json.dumps(new, sort_keys=True))
    if marker in seen:
        return []
    seen = seen | {marker}
    problems: list[str] = []
    old_types, new_types = _types(old), _types(new)
    if old_types and new_types and not old_types <= new_types:
        problems.append(f"{where}: type {sorted(old_types)} became {sorted(new_types)}")
    old_props: dict[str, Any] = old.get("properties", {})
    new_props: dict[str, Any] = new.get("properties", {})
    for name in old_props:
        if name not in new_props:
            problems.append(f"{where}/{name}: field removed or renamed")
        else:
            problems.extend(_compare(old_props[name], new_props[name], old_defs, new_defs, f"{where}/{name}", seen))
    for name in set(new.get("required", [])) - set(old.get("required", [])):
        problems.append(f"{where}/{name}: became required")
    for keyword in ("items", "additionalProperties"):
        if isinstance(old.get(keyword), dict) and isinstance(new.get(keyword), dict):
            problems.extend(_compare(old[keyword], new[keyword], old_defs, new_defs, f"{where}/{keyword}", seen))
    for keyword in ("anyOf", "oneOf"):
        old_options, new_options = old.get(keyword, []), new.get(keyword, [])
        if len(new_options) < len(old_options):
            problems.append(f"{where}: {keyword} lost options")
    return problems
