"""The HTTP adapter: thin routes over the handlers."""
