"""A small client for OpenAI-compatible chat-completions endpoints (OpenAI, vLLM, Ollama, llama.cpp).

Retries 429, 5xx, timeouts and connection errors with exponential backoff and full jitter, honours
`Retry-After`, and raises one clear `LLMError` after the last attempt. The API key is read from the
environment, sent only in the Authorization header, and never appears in errors, logs or files.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from dataclasses import dataclass, field

import httpx

from .errors import LLMError

API_KEY_ENVS = ("PROMPT_RETRIEVER_LLM_API_KEY", "OPENAI_API_KEY")
REDACTED = "[REDACTED]"


def api_key_from_env() -> str | None:
    for name in API_KEY_ENVS:
        if os.environ.get(name):
            return os.environ[name]
    return None


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

    def __post_init__(self) -> None:
        if self.api_key is None:
            self.api_key = api_key_from_env()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        self._client = httpx.Client(
            base_url=self.base_url.rstrip("/"), headers=headers, timeout=self.timeout, verify=self.verify_tls
        )
        self._rng = random.Random(self.seed)

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
            retry_after = None
            try:
                resp = self._client.post("/chat/completions", json=body)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last = f"{type(exc).__name__}"
            else:
                if resp.status_code == 200:
                    try:
                        content = resp.json()["choices"][0]["message"]["content"]
                    except (ValueError, KeyError, IndexError, TypeError):
                        last = "malformed response body (no choices[0].message.content)"
                    else:
                        if isinstance(content, str):
                            return self._redact(content)  # the key never leaves the client
                        last = "malformed response body (content is not a string)"
                elif resp.status_code == 429 or resp.status_code >= 500:
                    last = f"HTTP {resp.status_code}"
                    retry_after = resp.headers.get("retry-after")
                else:
                    raise LLMError(
                        f"{self.base_url}: HTTP {resp.status_code} for model {self.model!r}: "
                        f"{self._redact(_short(resp.text))} (not retried)"
                    )
            if attempt < self.max_retries:
                self._sleep(attempt, retry_after)
        raise LLMError(f"{self.base_url}: no usable answer after {self.max_retries + 1} attempts (last: {last})")


def _short(text: str, n: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n] + "..."
