"""The whole stack as real processes on loopback, for end-to-end tests."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
GPU_STAGES = ("denoise", "detect")


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Stack:
    """Gateway, ingest and aggregator processes sharing one test database, namespace and blob directory."""

    env: dict[str, str]
    log_dir: Path
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def gateway_url(self) -> str:
        """Base URL of the gateway."""
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def ready_url(self, name: str) -> str:
        """Readiness endpoint of a service."""
        if name == "gateway":
            return f"{self.gateway_url}/readyz"
        return f"http://127.0.0.1:{self.ports[name]}/readyz"

    def start(self, name: str, **overrides: str) -> None:
        """Start a service and wait until it is ready."""
        self.ports.setdefault(name, free_port())
        env = {**self.env, **overrides}
        env["PIXTOOLS_PORT" if name == "gateway" else "PIXTOOLS_OPS_PORT"] = str(self.ports[name])
        log = (self.log_dir / f"{name}.log").open("ab")
        command = [str(BIN / f"pixtools-{name}")]
        if name in GPU_STAGES:
            command.append("serve")
        self.processes[name] = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.processes[name].poll() is not None:
                raise RuntimeError(f"{name} exited:\n{self.log(name)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.ready_url(name), timeout=1).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{name} not ready in time:\n{self.log(name)}")

    def kill(self, name: str) -> None:
        """SIGKILL a service: no drain, no cleanup."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self, name: str) -> int:
        """SIGTERM a service and wait for its draining shutdown; returns its exit code."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout=60)

    def stop_all(self) -> None:
        """Stop whatever is still running."""
        for name in list(self.processes):
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.stop(name)

    def log(self, name: str) -> str:
        """The tail of a service's log."""
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def stack_environment(*, amqp_url: str, database_url: str, namespace: str, blob_dir: Path) -> dict[str, str]:
    """Settings for a test stack: fast retries and webhook schedule, loopback webhooks and URL sources allowed."""
    return {
        **{key: value for key, value in os.environ.items() if not key.startswith("PIXTOOLS_")},
        "PIXTOOLS_ENV": "test",
        "PIXTOOLS_AMQP_URL": amqp_url,
        "PIXTOOLS_DATABASE_URL": database_url,
        "PIXTOOLS_NAMESPACE": namespace,
        "PIXTOOLS_BLOB_BACKEND": "local",
        "PIXTOOLS_BLOB_DIR": str(blob_dir),
        "PIXTOOLS_HOST": "127.0.0.1",
        "PIXTOOLS_OPS_HOST": "127.0.0.1",
        "PIXTOOLS_WEBHOOK_ALLOW_CIDRS": '["127.0.0.0/8"]',
        "PIXTOOLS_FETCH_ALLOW_CIDRS": '["127.0.0.0/8"]',
        "PIXTOOLS_WEBHOOK_RETRY_SCHEDULE": "0.2,0.4,0.8",
        "PIXTOOLS_RETRY__MAX_ATTEMPTS": "3",
        "PIXTOOLS_RETRY__BASE_DELAY_S": "0.2",
        "PIXTOOLS_RETRY__FACTOR": "2",
        "PIXTOOLS_DRAIN_SECONDS": "5",
        "PIXTOOLS_RELAY_POLL_S": "0.2",
        "PIXTOOLS_AUTH_CACHE_S": "0",
        "PIXTOOLS_MODELS_DIR": os.environ.get("PIXTOOLS_MODELS_DIR", str(SHARED / "models")),
    }
