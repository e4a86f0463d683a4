"""A real HTTP server on 127.0.0.1 that speaks the chat-completions protocol, with scripted faults."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Reply = tuple[int, dict, bytes, float]  # status, headers, body, delay seconds
# Two scripted headers the server acts on instead of sending: `X-Test-Drip: SECONDS` sends the whole
# response (status line and headers too) one byte every SECONDS; `X-Test-No-Length: 1` sends the body
# without Content-Length, ended by closing the connection.
DRIP, NO_LENGTH = "X-Test-Drip", "X-Test-No-Length"


def completion(content: str) -> bytes:
    return json.dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
        }
    ).encode()


class FakeChatServer:
    def __init__(self, responder: Callable[[dict, int], Reply]):
        self.responder = responder
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                with server._lock:
                    server.requests.append(body)
                    server.headers.append(dict(self.headers))
                    n = len(server.requests)
                if self.path != "/v1/chat/completions":
                    status, headers, payload, delay = 404, {}, b'{"error": "not found"}', 0.0
                else:
                    status, headers, payload, delay = server.responder(body, n)
                if delay:
                    time.sleep(delay)
                headers = dict(headers)
                drip = float(headers.pop(DRIP, 0) or 0)
                no_length = headers.pop(NO_LENGTH, None)
                if drip:
                    head = f"HTTP/1.0 {status} OK\r\nContent-Type: application/json\r\n"
                    head += f"Content-Length: {len(payload)}\r\n\r\n"
                    try:
                        for i, byte in enumerate(head.encode() + payload):
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            if i < 10_000:
                                time.sleep(drip)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    self.close_connection = True
                    return
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    if no_length:
                        self.close_connection = True
                    else:
                        self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def run_llm_generate(base_url: str, corpus, out, *extra: str, model: str = "tiny"):
    """`prompt-retriever queries generate --method llm` against `base_url`, in-process."""
    from typer.testing import CliRunner

    from prompt_retriever.cli import app

    args = [
        "queries",
        "generate",
        "--method",
        "llm",
        "--base-url",
        base_url,
        "--llm-model",
        model,
        "--corpus",
        str(corpus),
        "--out",
        str(out),
        *extra,
    ]
    return CliRunner().invoke(app, args)


class HangUpServer:
    """Accepts TCP connections on 127.0.0.1 and closes each at once (a connection failure), counting them."""

    def __init__(self):
        import socket

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.accepted = 0
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"

    def __enter__(self) -> HangUpServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop = True
        self.sock.close()


def closed_port_url() -> str:
    """The URL of a local port nothing listens on."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
