"""`pixtools-stack`: every service as a local process against local RabbitMQ and Postgres."""

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from pixtools_devstack.infra import InfraUnavailable, LocalInfra

BIN = Path(sys.executable).parent
GATEWAY_URL = "http://127.0.0.1:8000"
GPU_STAGES = ("denoise", "detect")
DEFAULT_PORTS = {"gateway": 8000, "ingest": 9101, "aggregator": 9102, "denoise": 9103, "detect": 9104}


def local_environment(root: Path) -> dict[str, str]:
    """Settings of the local stack: local blob directory, development tenant, loopback webhooks and sources only."""
    models = root.parent / "shared" / "models"
    defaults = {
        "PIXTOOLS_ENV": "local",
        "PIXTOOLS_DATABASE_URL": "postgresql+asyncpg://postgres@localhost:5432/pixtools",
        "PIXTOOLS_AMQP_URL": "amqp://guest:guest@localhost:5672/",
        "PIXTOOLS_BLOB_BACKEND": "local",
        "PIXTOOLS_BLOB_DIR": str(root / "var" / "blobs"),
        "PIXTOOLS_SEED_DEV_TENANT": "true",
        "PIXTOOLS_DEV_API_KEY": "pixtools-dev-key",
        "PIXTOOLS_WEBHOOK_ALLOW_CIDRS": '["127.0.0.0/8"]',
        "PIXTOOLS_FETCH_ALLOW_CIDRS": '["127.0.0.0/8"]',
        "PIXTOOLS_MODELS_DIR": str(models),
        "PIXTOOLS_LOG_JSON": "true",
    }
    return {**defaults, **{key: value for key, value in os.environ.items() if key in defaults}}


@dataclass
class Service:
    """One service process."""

    name: str
    command: list[str]
    ready_url: str
    process: subprocess.Popen[bytes] | None = None


@dataclass
class LocalStack:
    """Starts infrastructure, migrates, then runs the services until stopped."""

    root: Path
    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    gpu_stages: bool = True
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    infra: LocalInfra = field(default_factory=LocalInfra)
    services: list[Service] = field(default_factory=list)

    def start(self) -> None:
        """Bring everything up and wait until every service is ready."""
        self.infra.ensure()
        env = {**os.environ, **local_environment(self.root), **self.env}
        subprocess.run([str(BIN / "pixtools-admin"), "migrate"], env=env, check=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        names = ["gateway", "ingest", "aggregator"]
        if self.gpu_stages:
            names += [name for name in GPU_STAGES if self._can_serve(name, env)]
        for name in names:
            port = self.ports[name]
            if name == "gateway":
                command, ready, port_variable = (
                    [str(BIN / "pixtools-gateway")],
                    f"{self.gateway_url}/readyz",
                    "PIXTOOLS_PORT",
                )
            else:
                command, ready, port_variable = (
                    [str(BIN / f"pixtools-{name}"), *(["serve"] if name in GPU_STAGES else [])],
                    f"http://127.0.0.1:{port}/readyz",
                    "PIXTOOLS_OPS_PORT",
                )
            log = (self.log_dir / f"{name}.log").open("ab")
            process = subprocess.Popen(
                command, env={**env, port_variable: str(port)}, stdout=log, stderr=subprocess.STDOUT
            )
            self.services.append(Service(name, command, ready, process))
        for service in self.services:
            self._wait_ready(service)
        print(f"stack ready: {', '.join(service.name for service in self.services)}; logs in {self.log_dir}")

    @staticmethod
    def _can_serve(name: str, env: dict[str, str]) -> bool:
        """True when a GPU stage is installed and its model files check out; otherwise say why it is skipped."""
        if importlib.util.find_spec(f"pixtools_{name}") is None:
            return False
        if importlib.util.find_spec(f"pixtools_{name}.app") is None:
            return False
        command = [str(BIN / f"pixtools-{name}"), "models", "check"]
        check = subprocess.run(command, env=env, capture_output=True, text=True)
        if check.returncode != 0:
            print(f"not starting {name}: {(check.stderr or check.stdout).strip().splitlines()[-1:]}")
            return False
        return True

    @property
    def gateway_url(self) -> str:
        """Base URL of this stack's gateway."""
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def _wait_ready(self, service: Service, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert service.process is not None
            if service.process.poll() is not None:
                raise RuntimeError(f"{service.name} exited; see {self.log_dir / (service.name + '.log')}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(service.ready_url, timeout=1).status_code == 200:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"{service.name} was not ready within {seconds:.0f}s")

    def stop(self) -> None:
        """Ask every service to drain, then stop the infrastructure this stack started."""
        for service in self.services:
            if service.process is not None and service.process.poll() is None:
                service.process.send_signal(signal.SIGTERM)
        for service in self.services:
            if service.process is not None:
                try:
                    service.process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    service.process.kill()
        self.infra.stop_started()


@contextlib.contextmanager
def running_stack(
    root: Path, env: dict[str, str] | None = None, ports: dict[str, int] | None = None, gpu_stages: bool = True
) -> Iterator[LocalStack]:
    """A started stack that is stopped however the block ends; `gpu_stages` adds denoise and detect."""
    stack = LocalStack(
        root=root,
        log_dir=root / "var" / "logs",
        env=env or {},
        ports=ports or dict(DEFAULT_PORTS),
        gpu_stages=gpu_stages,
    )
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def project_root() -> Path:
    """The checkout this virtualenv belongs to (the virtualenv lives at <root>/.venv)."""
    return Path(sys.prefix).resolve().parent


def main() -> None:
    """Serve the stack on http://localhost:8000 until Ctrl-C."""
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        with running_stack(project_root()) as stack:
            print(f"PixTools is serving {GATEWAY_URL} (docs at {GATEWAY_URL}/docs); Ctrl-C stops it")
            while not stopping.wait(1):
                if dead := [
                    service.name for service in stack.services if service.process and service.process.poll() is not None
                ]:
                    sys.exit(f"{', '.join(dead)} exited; see {stack.log_dir}")
            print("stopping: services drain their in-flight work")
    except InfraUnavailable as error:
        sys.exit(str(error))
