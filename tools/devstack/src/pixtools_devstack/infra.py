"""RabbitMQ and Postgres on localhost: found running, started when installed, or explained."""

import contextlib
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

COMPOSE_HINT = "or run them with Docker: `docker compose up -d rabbitmq postgres`"


class InfraUnavailable(RuntimeError):
    """A required service is neither running nor startable here."""


def listening(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on the port."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def _wait(port: int, name: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if listening(port):
            return
        time.sleep(0.5)
    raise InfraUnavailable(f"{name} did not start listening on port {port} within {seconds:.0f}s")


def _postgres_clusters() -> list[str]:
    root = Path("/etc/postgresql")
    return sorted(path.name for path in root.iterdir()) if root.is_dir() else []


@dataclass
class LocalInfra:
    """Starts what is installed but stopped, and stops only what it started."""

    started: list[str] = field(default_factory=list)

    def ensure(self) -> None:
        """Make RabbitMQ (5672) and Postgres (5432) reachable, or raise with what to do."""
        if not listening(5672):
            if shutil.which("rabbitmq-server") is None:
                raise InfraUnavailable(
                    f"RabbitMQ is not running on localhost:5672 and is not installed; install it {COMPOSE_HINT}"
                )
            print("starting RabbitMQ (rabbitmq-server -detached)")
            subprocess.run(["rabbitmq-server", "-detached"], check=True)
            _wait(5672, "RabbitMQ", 90)
            self.started.append("rabbitmq")
        if not listening(5432):
            clusters = _postgres_clusters()
            if shutil.which("pg_ctlcluster") is None or not clusters:
                raise InfraUnavailable(
                    f"Postgres is not running on localhost:5432 and is not installed; install it {COMPOSE_HINT}"
                )
            print(f"starting Postgres {clusters[-1]} (pg_ctlcluster)")
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", clusters[-1], "main", "start"], check=True)
            _wait(5432, "Postgres", 60)
            self.started.append("postgres")

    def stop_started(self) -> None:
        """Stop the services this run started, leaving ones that were already running alone."""
        if "rabbitmq" in self.started:
            subprocess.run(["rabbitmqctl", "stop"], check=False, capture_output=True)
        if "postgres" in self.started:
            clusters = _postgres_clusters()
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", clusters[-1], "main", "stop"], check=False)
        self.started.clear()
