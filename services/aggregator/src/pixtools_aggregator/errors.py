"""The aggregator's exceptions."""


class AggregatorError(Exception):
    """Base of every aggregator error."""


class UnknownJob(AggregatorError):
    """A step event names a job that does not exist."""


class UnknownStep(AggregatorError):
    """A step event names a step that is not in its job's tree."""


class InvalidWebhookSecret(AggregatorError):
    """A tenant's webhook secret is not 'whsec_' followed by base64."""
