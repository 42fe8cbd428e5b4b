"""RabbitMQ delivery: topology, confirmed publishing, and consumers that retry and dead-letter."""

from pixtools_platform.broker.consumer import Consumer, GroupHandler, Grouping, Handler, Outcome
from pixtools_platform.broker.errors import BrokerError, PermanentError, TransientError, Unroutable
from pixtools_platform.broker.publisher import Publisher, encode_event
from pixtools_platform.broker.retry import RetryPolicy
from pixtools_platform.broker.topology import Topology, connect

__all__ = [
    "BrokerError",
    "Consumer",
    "GroupHandler",
    "Grouping",
    "Handler",
    "Outcome",
    "PermanentError",
    "Publisher",
    "RetryPolicy",
    "Topology",
    "TransientError",
    "Unroutable",
    "connect",
    "encode_event",
]
