"""Start the real `prompt-retriever serve` in a subprocess on a free loopback port, and keep it searched
(`Searcher`) while something changes under it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base: str, proc: subprocess.Popen, output, timeout: float = 120.0) -> None:
    """Poll `base`/readyz until it answers 200; `output()` gives the server's output if it exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {output()[-2000:]}")
        try:
            if httpx.get(base + "/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("server did not become ready")
        time.sleep(0.3)


def stop(proc: subprocess.Popen) -> None:
    """Stop a server process: terminate, and kill it if it has not exited within 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@contextmanager
def running_server(*args: str, timeout: float = 120.0):
    port = free_port()
    cmd = [sys.executable, "-m", "prompt_retriever.cli", "serve", "--host", "127.0.0.1", "--port", str(port), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(os.environ))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc, lambda: proc.stdout.read().decode(errors="replace"), timeout)
        yield base
    finally:
        stop(proc)


class Searcher(threading.Thread):
    """Searches without pause until stopped; every answer that is not a 200 with results is a failure."""

    def __init__(self, base: str):
        super().__init__(daemon=True)
        self.base, self.ok, self.failures = base, 0, []
        self.done = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as client:
            while not self.done.is_set():
                try:
                    r = client.get("/api/search", params={"q": "a lighthouse keeper at night", "k": 3})
                    if r.status_code == 200 and r.json()["results"]:
                        self.ok += 1
                    else:
                        self.failures.append(f"{r.status_code} {r.text[:200]}")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))

    def wait_for(self, n: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        start = self.ok
        while self.ok < start + n and time.monotonic() < deadline and not self.failures:
            time.sleep(0.05)
