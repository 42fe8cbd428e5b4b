"""The aggregator's exceptions."""


class AggregatorError(Exception):
    """Base of every aggregator error."""


class UnknownJob(AggregatorError):
    """A step event names a job that does not exist."""


class UnknownStep(AggregatorError):
    """A step event names a step that is not in its job's tree."""


class OutputsConflict(AggregatorError):
    """A step's output existed before the step succeeded: the state machine rules it out, so the data is wrong."""


class InvalidWebhookSecret(AggregatorError):
    """A tenant's webhook secret is not 'whsec_' followed by base64."""
