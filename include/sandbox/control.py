"""Driving the sandbox from tests, benchmarks and the demo: start it, inject faults, read what it saw."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Sandbox:
    """A client of the sandbox's control API."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()

    def url(self, path: str = "") -> str:
        return f"{self.base_url}{path}"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, self.url(path), timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    def healthy(self) -> bool:
        try:
            return bool(self._call("GET", "/_sandbox/health")["ok"])
        except (requests.RequestException, ValueError, KeyError):
            return False

    def reset(self) -> None:
        self._call("POST", "/_sandbox/reset")

    def configure(self, vendor: str, **changes: Any) -> dict[str, Any]:
        return self._call("PUT", f"/_sandbox/config/{vendor}", json=changes)

    def fault(self, vendor: str, kind: str, **spec: Any) -> dict[str, Any]:
        return self._call("POST", "/_sandbox/faults", json={"vendor": vendor, "kind": kind, **spec})

    def faults(self) -> list[dict[str, Any]]:
        return self._call("GET", "/_sandbox/faults")

    def clear_faults(self) -> None:
        self._call("DELETE", "/_sandbox/faults")

    def stats(self, vendor: str) -> dict[str, Any]:
        return self._call("GET", "/_sandbox/stats", params={"vendor": vendor})

    def requests(self, vendor: str) -> list[dict[str, Any]]:
        return self._call("GET", "/_sandbox/requests", params={"vendor": vendor})


@contextlib.contextmanager
def running_sandbox(port: int | None = None, *, log_path: Path | None = None) -> Iterator[Sandbox]:
    """Start the sandbox in a subprocess on ``port`` (a free one by default); stop it on exit."""
    port = port or free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), str(PROJECT_ROOT / "plugins")])}
    output = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "include.sandbox", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=output,
        stderr=output,
    )
    sandbox = Sandbox(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        while not sandbox.healthy():
            if process.poll() is not None:
                raise RuntimeError(f"the sandbox exited with code {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("the sandbox did not start within 60 s")
            time.sleep(0.1)
        yield sandbox
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        if log_path:
            output.close()  # type: ignore[union-attr]
