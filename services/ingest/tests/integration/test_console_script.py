"""`pixtools-ingest` as a real process: it serves on uvloop and drains on SIGTERM."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


def logged(path: Path, message: str) -> dict[str, Any] | None:
    """The first JSON log record with this message, if the process has written it yet."""
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{") and (record := json.loads(line)).get("message") == message:
            return dict(record)
    return None


def wait_logged(process: subprocess.Popen[bytes], path: Path, message: str, seconds: float = 60) -> dict[str, Any]:
    """Poll the process's log until it writes `message`; fail if it exits or takes longer than `seconds`."""
    deadline = time.monotonic() + seconds
    while (record := logged(path, message)) is None:
        assert process.poll() is None, f"exited with {process.returncode}:\n{path.read_text(errors='replace')}"
        assert time.monotonic() < deadline, f"no {message!r} in time:\n{path.read_text(errors='replace')}"
        time.sleep(0.1)
    return record


def test_ingest_console_script_serves_on_uvloop_and_drains_on_sigterm(infra, namespace, tmp_path):
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("PIXTOOLS_")},
        "PIXTOOLS_ENV": "test",
        "PIXTOOLS_AMQP_URL": infra.amqp_url,
        "PIXTOOLS_NAMESPACE": namespace,
        "PIXTOOLS_BLOB_BACKEND": "local",
        "PIXTOOLS_BLOB_DIR": str(tmp_path / "blobs"),
        "PIXTOOLS_OPS_PORT": "0",
        "PIXTOOLS_LOG_LEVEL": "INFO",
        "PIXTOOLS_LOG_JSON": "true",
        "PIXTOOLS_DRAIN_SECONDS": "5",
    }
    log = tmp_path / "ingest.log"
    with log.open("wb") as output:
        process = subprocess.Popen([str(BIN / "pixtools-ingest")], env=env, stdout=output, stderr=output)
    try:
        started = wait_logged(process, log, "started")
        assert started["event_loop"] == "uvloop.Loop"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert logged(log, "stopped") is not None
