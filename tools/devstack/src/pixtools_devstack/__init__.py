"""Local development stack: infrastructure checks, service processes and the demo."""
