"""The SDK's exceptions: one per kind of refusal, each carrying the server's problem document."""

import httpx

from pixtools_client._models import Problem


class PixToolsError(Exception):
    """Base of every error this SDK raises."""


class TransportError(PixToolsError):
    """The server could not be reached or the connection broke (after the retries the policy allows)."""


class WaitTimeout(PixToolsError):
    """A job or batch was not terminal within the time allowed."""


class IntegrityError(PixToolsError):
    """A downloaded output does not match the SHA-256 the server listed."""


class ApiError(PixToolsError):
    """The API refused the request; `problem` is its RFC 9457 document."""

    def __init__(self, problem: Problem, *, status: int, headers: httpx.Headers | None = None):
        self.problem = problem
        self.status = status
        self.headers = headers or httpx.Headers()
        super().__init__(self.summary)

    @property
    def type(self) -> str:
        """The problem's stable type URI."""
        return self.problem.type

    @property
    def title(self) -> str:
        """The problem's short title."""
        return self.problem.title

    @property
    def detail(self) -> str | None:
        """What exactly went wrong."""
        return self.problem.detail

    @property
    def summary(self) -> str:
        """`title: detail` on one line."""
        return f"{self.title}: {self.detail}" if self.detail and self.detail != self.title else self.title


class BadRequest(ApiError):
    """The request was malformed (400, 413, 414, 415, 431)."""


class Unauthorized(ApiError):
    """No valid API key or token was sent (401)."""


class Forbidden(ApiError):
    """The credentials may not do this (403)."""


class NotFound(ApiError):
    """Nothing of this tenant's has that id (404)."""


class Conflict(ApiError):
    """The state does not allow this, or an idempotency key was reused for another request (409)."""


class InvalidRequest(ApiError):
    """A field, the pipeline or the image did not validate (422); `problem.errors` says where."""


class RateLimited(ApiError):
    """Too many requests (429); `retry_after` is how many seconds the server asked to wait."""

    @property
    def retry_after(self) -> float | None:
        """Seconds to wait before trying again, from `Retry-After`."""
        from pixtools_client._retry import retry_after_seconds

        return retry_after_seconds(self.headers)


class ServiceUnavailable(ApiError):
    """The service cannot answer now (503); `retry_after` says when to try again."""

    @property
    def retry_after(self) -> float | None:
        """Seconds to wait before trying again, from `Retry-After`."""
        from pixtools_client._retry import retry_after_seconds

        return retry_after_seconds(self.headers)


class ServerError(ApiError):
    """The server failed (5xx other than 503)."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: BadRequest,
    414: BadRequest,
    415: BadRequest,
    422: InvalidRequest,
    429: RateLimited,
    431: BadRequest,
    503: ServiceUnavailable,
}


def error_for(response: httpx.Response) -> ApiError:
    """The exception for a refused response, with its problem document (or one made from the status line)."""
    problem: Problem | None = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        try:
            problem = Problem.model_validate(body)
        except ValueError:
            problem = None
    if problem is None:
        # The caller reads a streamed response before asking, so `text` is always there.
        text = response.text.strip()[:200]
        title = response.reason_phrase or f"HTTP {response.status_code}"
        problem = Problem(title=title, status=response.status_code, detail=text or None)
    cls = _BY_STATUS.get(response.status_code) or (ServerError if response.status_code >= 500 else ApiError)
    return cls(problem, status=response.status_code, headers=response.headers)
