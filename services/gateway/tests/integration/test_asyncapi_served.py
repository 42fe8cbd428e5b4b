"""The gateway serves the AsyncAPI document of its own deployment: namespace, broker and security, no secrets."""

from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.integration


async def test_served_asyncapi_names_this_namespace_exchange_and_broker(api, gateway_settings):
    document = (await api.client.get("/asyncapi.json")).json()
    namespace = gateway_settings.namespace
    assert namespace != "pixtools"
    channel = document["channels"]["job.completed.v1"]
    assert channel["bindings"]["amqp"]["exchange"]["name"] == f"{namespace}.events"
    queue = document["operations"]["receive_job.completed.v1"]["x-example-queue"]
    assert queue.startswith(f"{namespace}.")
    broker = urlsplit(gateway_settings.amqp_url)
    assert document["servers"]["rabbitmq"]["host"] == f"{broker.hostname}:{broker.port or 5672}"
    assert document["components"]["securitySchemes"]["userPassword"]["type"] == "userPassword"
    served = (await api.client.get("/asyncapi.json")).text
    assert "pixtools.events" not in served
    if broker.password:
        assert broker.password not in served
    page = await api.client.get("/asyncapi")
    assert f"{namespace}.events" in page.text
