"""Helpers of the feedback tests: a real uvicorn serving an app in a thread, and a real PostgreSQL server
started in a temporary folder (Debian's `postgresql` package: `initdb`, `pg_ctl`)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
from server_util import free_port


@contextmanager
def app_server(app):
    """Serve `app` with uvicorn on a free loopback port in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(10)


def pg_bin(name: str) -> str | None:
    """A PostgreSQL server program: on PATH, else in Debian's versioned folder."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _as_postgres(cmd: list[str]) -> list[str]:
    """`initdb` and `postgres` refuse to run as root: as root, run them as the `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextmanager
def postgres_server(folder: Path):
    """A PostgreSQL server in `folder`, listening only on a Unix socket there; yields its
    `postgresql://` URL (user postgres, database postgres)."""
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    assert initdb and pg_ctl, "PostgreSQL server programs not found"
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data, log, port = folder / "db", folder / "log", free_port()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "check": True, "timeout": 120}
    subprocess.run(_as_postgres([initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]), **quiet)
    options = f"-p {port} -k {folder} -c listen_addresses='' -c fsync=off"
    subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "start"]), **quiet)
    try:
        yield f"postgresql://postgres@/postgres?host={folder}&port={port}"
    finally:
        subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), **quiet)


def wait_for(check, timeout: float = 15.0, what: str = "condition"):
    """Poll `check()` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout} s")
        time.sleep(0.05)


def search(base: str, q: str, client_id: str | None = None, **params) -> dict:
    headers = {"X-Client-Id": client_id} if client_id else {}
    r = httpx.get(base + "/api/search", params={"q": q, **params}, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def event(query_id: str, action: str, object_id: str, position: int, client_id: str = "client-0001") -> dict:
    """A POST /api/events body (a UBI event)."""
    return {
        "action_name": action,
        "query_id": query_id,
        "client_id": client_id,
        "event_attributes": {"object": {"object_id": object_id}, "position": {"ordinal": position}},
    }
