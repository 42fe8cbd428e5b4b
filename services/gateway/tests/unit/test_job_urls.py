"""The job URLs a submission answers with: formatted without url_for, yet exactly what url_for builds."""

import uuid

import pytest
from starlette.requests import Request

from pixtools_gateway.api.jobs import job_url
from pixtools_gateway.app import create_app
from pixtools_gateway.settings import GatewaySettings

APP = create_app(GatewaySettings())


def _request(root_path: str, host: bytes) -> Request:
    scope = {
        "type": "http",
        "app": APP,
        "router": APP.router,
        "scheme": "https",
        "server": ("gateway", 443),
        "root_path": root_path,
        "path": f"{root_path}/v1/jobs",
        "headers": [(b"host", host)],
        "method": "POST",
        "query_string": b"",
    }
    return Request(scope)


@pytest.mark.parametrize(("root_path", "host"), [("", b"api.example.com"), ("/pixtools", b"example.com:8443")])
def test_a_job_url_is_what_url_for_builds(root_path: str, host: bytes) -> None:
    request = _request(root_path, host)
    job_id = uuid.uuid4()
    assert job_url(request, job_id) == str(request.url_for("read_job", job_id=job_id))
    assert job_url(request, job_id) + "/events" == str(request.url_for("job_events", job_id=job_id))
