"""What the OpenAPI document says of synchronous submissions and signed output links."""

from typing import Any

import pytest

from pixtools_gateway.app import create_app
from pixtools_gateway.settings import GatewaySettings


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app(GatewaySettings()).openapi()


def test_submission_declares_the_prefer_header_and_the_finished_job_answer(document) -> None:
    submit = document["paths"]["/v1/jobs"]["post"]
    [prefer] = [parameter for parameter in submit["parameters"] if parameter["name"] == "Prefer"]
    assert prefer["in"] == "header"
    assert "wait=N" in prefer["description"]
    finished = submit["responses"]["200"]
    assert finished["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/JobView"}
    assert "Preference-Applied" in finished["headers"]
    assert submit["responses"]["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/JobAccepted"
    }


def test_signed_link_route_needs_no_key_and_declares_its_refusals(document) -> None:
    link = document["paths"]["/v1/output-links/{job_id}/{output_id}"]["get"]
    assert link["security"] == []
    assert {"200", "403", "404", "422"} == set(link["responses"])
    assert "401" not in link["responses"]
    assert "image/png" in link["responses"]["200"]["content"]
    assert "expired" in link["responses"]["403"]["description"]
    assert {parameter["name"] for parameter in link["parameters"]} == {"job_id", "output_id", "expires", "signature"}
