"""The SDK's version and the User-Agent it sends."""

import platform

__version__ = "0.1.0"
USER_AGENT = f"pixtools-client/{__version__} python/{platform.python_version()}"
DEFAULT_URL = "http://localhost:8000"
