"""The operation catalogue lists exactly the registry, with params schemas that accept what pipelines accept."""

import jsonschema
import pytest

from pixtools_contracts import OPERATIONS, Pipeline

pytestmark = pytest.mark.integration


async def test_the_catalogue_lists_every_registered_operation_to_any_key(api, tenant_key):
    assert (await api.client.get("/v1/operations")).status_code == 401
    answer = await api.client.get("/v1/operations", headers=api.as_tenant(tenant_key))
    assert answer.status_code == 200
    catalogue = {entry["op"]: entry for entry in answer.json()["operations"]}
    assert list(catalogue) == list(OPERATIONS)
    assert {op: entry["service"] for op, entry in catalogue.items()} == {
        "resize": "ingest",
        "convert": "ingest",
        "metadata": "ingest",
        "denoise": "denoise",
        "detect": "detect",
    }
    assert catalogue["metadata"]["produces_image"] is False
    assert catalogue["resize"]["description"] == "Resize to a box; give width, height or both."


async def test_params_schemas_carry_defaults_and_agree_with_pipeline_validation(api, tenant_key):
    answer = await api.client.get("/v1/operations", headers=api.as_tenant(tenant_key))
    catalogue = {entry["op"]: entry for entry in answer.json()["operations"]}
    detect = catalogue["detect"]["params_schema"]
    assert detect["properties"]["confidence"]["default"] == 0.25
    cases = [
        ("convert", {"format": "webp", "quality": 80}, True),
        ("convert", {"format": "gif"}, False),
        ("resize", {"width": 256}, True),
        ("resize", {"width": 0}, False),
        ("detect", {"classes": ["person"], "overlay": True}, True),
    ]
    for op, params, valid in cases:
        errors = list(jsonschema.Draft202012Validator(catalogue[op]["params_schema"]).iter_errors(params))
        assert (not errors) is valid, (op, params, errors)
        try:
            Pipeline.model_validate([{"op": op, "params": params}])
            accepted = True
        except ValueError:
            accepted = False
        assert accepted is valid, (op, params)
