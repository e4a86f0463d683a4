"""A small client for OpenAI-compatible chat-completions endpoints (OpenAI, vLLM, Ollama, llama.cpp).

Retries 429, 5xx, timeouts and connection errors with exponential backoff and full jitter, honours
`Retry-After`, and raises one clear `LLMError` after the last attempt. The API key is read from the
environment, sent only in the Authorization header, and never appears in errors, logs or files.

Against dead or hostile endpoints: `timeout` is a total deadline per attempt (a watchdog shuts the
socket at the deadline, so a server dripping one byte a second cannot hold a request open), a circuit
breaker fails every later request at once after `breaker_after` consecutive connection failures, and a
response larger than `max_response_bytes` is refused as it streams in, never read whole.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
from dataclasses import dataclass, field

import httpx

from .errors import LLMError
from .settings import llm_api_key

REDACTED = "[REDACTED]"
MAX_RESPONSE_BYTES = 1 << 20  # a chat completion of a few hundred tokens is a few KB


class _TooLarge(Exception):
    pass


class _DeadlineExceeded(Exception):
    pass


@dataclass
class ChatClient:
    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 60.0
    max_retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 20.0
    temperature: float = 0.8
    max_tokens: int = 256
    verify_tls: bool = True
    seed: int | None = None
    max_response_bytes: int = MAX_RESPONSE_BYTES
    breaker_after: int = 5  # consecutive connection failures before failing fast (0: never)

    def __post_init__(self) -> None:
        if self.api_key is None:
            self.api_key = llm_api_key()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        # No keep-alive: every attempt opens its own connection, so the watchdog knows its socket.
        self._client = httpx.Client(
            base_url=self.base_url.rstrip("/"),
            headers=headers,
            timeout=self.timeout,
            verify=self.verify_tls,
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self._conn_failures = 0
        self._last_failure = ""

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _redact(self, text: str) -> str:
        return text.replace(self.api_key, REDACTED) if self.api_key else text

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        delay = self._rng.uniform(0, min(self.backoff_max, self.backoff_base * 2**attempt))
        if retry_after:
            with contextlib.suppress(ValueError):
                delay = max(delay, min(float(retry_after), self.backoff_max))
        time.sleep(delay)

    def complete(self, messages: list[dict[str, str]], **params) -> str:
        """Return the first choice's message content."""
        body = {
            "model": self.model,
            "messages": messages,
            "temperature": params.pop("temperature", self.temperature),
            "max_tokens": params.pop("max_tokens", self.max_tokens),
            **params,
        }
        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            self._check_breaker()
            retry_after = None
            try:
                status, resp_headers, raw = self._post(body)
            except _DeadlineExceeded:
                last = f"total deadline of {self.timeout:g} s exceeded"
                self._connection_failed(last)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last = f"{type(exc).__name__}"
                self._connection_failed(last)
            except _TooLarge:
                raise LLMError(
                    f"{self.base_url}: response larger than {self.max_response_bytes:,} bytes for model "
                    f"{self.model!r} (refused, not retried)"
                ) from None
            else:
                with self._lock:
                    self._conn_failures = 0
                text = raw.decode("utf-8", errors="replace")
                if status == 200:
                    try:
                        content = json.loads(text)["choices"][0]["message"]["content"]
                    except (ValueError, KeyError, IndexError, TypeError):
                        last = "malformed response body (no choices[0].message.content)"
                    else:
                        if isinstance(content, str):
                            return self._redact(content)  # the key never leaves the client
                        last = "malformed response body (content is not a string)"
                elif status == 429 or status >= 500:
                    last = f"HTTP {status}"
                    retry_after = resp_headers.get("retry-after")
                else:
                    raise LLMError(
                        f"{self.base_url}: HTTP {status} for model {self.model!r}: "
                        f"{self._redact(_short(text))} (not retried)"
                    )
            if attempt < self.max_retries:
                self._check_breaker()
                self._sleep(attempt, retry_after)
        raise LLMError(f"{self.base_url}: no usable answer after {self.max_retries + 1} attempts (last: {last})")

    def _check_breaker(self) -> None:
        with self._lock:
            n, last = self._conn_failures, self._last_failure
        if self.breaker_after and n >= self.breaker_after:
            raise LLMError(
                f"{self.base_url}: circuit open after {n} consecutive connection failures (last: {last}); "
                "not trying again: check that the endpoint is up, then re-run"
            )

    def _connection_failed(self, what: str) -> None:
        with self._lock:
            self._conn_failures += 1
            self._last_failure = what

    def _post(self, body: dict) -> tuple[int, httpx.Headers, bytes]:
        """POST within one wall-clock deadline of `timeout` seconds, the body streamed and capped."""
        deadline = time.monotonic() + self.timeout
        sockets: list[socket.socket] = []
        expired = threading.Event()

        def trace(event: str, info: dict) -> None:
            if event == "connection.connect_tcp.complete":
                sock = getattr(info.get("return_value"), "get_extra_info", lambda _: None)("socket")
                if sock is not None:
                    sockets.append(sock)
                    if expired.is_set():
                        cut()

        def cut() -> None:
            expired.set()
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        watchdog = threading.Timer(self.timeout, cut)
        watchdog.daemon = True
        watchdog.start()
        try:
            with self._client.stream("POST", "/chat/completions", json=body, extensions={"trace": trace}) as resp:
                length = resp.headers.get("content-length", "")
                if length.isdigit() and int(length) > self.max_response_bytes:
                    raise _TooLarge
                chunks, size = [], 0
                for chunk in resp.iter_bytes():
                    size += len(chunk)
                    if size > self.max_response_bytes:
                        raise _TooLarge
                    if time.monotonic() > deadline:
                        raise _DeadlineExceeded
                    chunks.append(chunk)
                return resp.status_code, resp.headers, b"".join(chunks)
        except (httpx.TimeoutException, httpx.TransportError):
            if expired.is_set() or time.monotonic() > deadline:
                raise _DeadlineExceeded from None
            raise
        finally:
            watchdog.cancel()


def _short(text: str, n: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n] + "..."
