"""`Client` and `AsyncClient` offer the same calls with the same parameters, so the two cannot drift apart."""

import inspect

from pixtools_client import AsyncClient, Client

_LIFECYCLE = {"close", "aclose"}


def _public(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_") and name not in _LIFECYCLE
    }


def test_both_clients_have_the_same_methods_and_parameters():
    sync, asynchronous = _public(Client), _public(AsyncClient)
    assert sorted(sync) == sorted(asynchronous)
    for name, signature in sync.items():
        assert list(signature.parameters) == list(asynchronous[name].parameters), name
        defaults = [parameter.default for parameter in signature.parameters.values()]
        assert defaults == [parameter.default for parameter in asynchronous[name].parameters.values()], name


def test_every_async_call_is_awaitable_or_an_async_iterator():
    for name, member in inspect.getmembers(AsyncClient, inspect.isfunction):
        if name.startswith("_") and name not in ("__aenter__", "__aexit__"):
            continue
        assert inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member), name
