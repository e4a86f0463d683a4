"""What wraps the routes: plain-ASGI middleware (the access log, HEAD as GET, the security headers),
the error handlers that make every error `{"error": ...}`, and the relative trailing-slash redirect.

The request log escapes control characters (`log_safe`) and carries no query text unless `log_queries`
is on; CORS is off unless origins are given.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from ..escaping import log_text as log_safe
from .asgi import timed_call  # the access log escapes each field with it

log = logging.getLogger("prompt_retriever.api")
# The page and /docs load their scripts and styles from /static and fetch from this origin only: nothing
# inline, nothing from elsewhere, and no other site may frame them (clickjacking).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


class AccessLog:
    """One log line per request: method, path, status, time. The query string (the user's search) is
    left out unless `log_queries` is on. Plain ASGI, so it adds no task or stream per request."""

    def __init__(self, app, log_queries: bool = False):
        self.app, self.log_queries = app, log_queries

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        def done(status: int, seconds: float) -> None:
            path = scope.get("path", "")
            if self.log_queries and scope.get("query_string"):
                path = f"{path}?{scope['query_string'].decode('latin-1')}"
            log.info("%s %s %d %.1fms", log_safe(str(scope.get("method"))), log_safe(path), status, seconds * 1000)

        await timed_call(self.app, scope, receive, send, done)


class HeadAsGet:
    """HEAD on any GET route: the GET handler runs, its headers (Content-Length included) are sent and
    its body is dropped. FastAPI routes answer only the methods they name, so HEAD used to get a 405."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "HEAD":
            return await self.app(scope, receive, send)

        async def headers_only(message):
            if message["type"] == "http.response.body":
                if message.get("more_body"):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


class SecurityHeaders:
    """`SECURITY_HEADERS` on every HTTP response (the page, static files, the API, errors). Plain ASGI."""

    def __init__(self, app):
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *self.headers]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


MAX_BODY_BYTES = 64 * 1024  # a prompt is at most a few KB (corpus.MAX_TEXT_CHARS); searches take no body


class BodyLimit:
    """Request bodies of at most `limit` bytes: a larger one is answered 413 as soon as its
    `Content-Length` says so, or once that many bytes have arrived, and the app never sees it. The body
    is read (at most `limit` bytes) before the app runs and replayed to it, so no route, dependency or
    validator ever buffers more. Plain ASGI."""

    def __init__(self, app, limit: int = MAX_BODY_BYTES):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", ())).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            return await self._too_large(send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await self._too_large(send)
            more = message.get("more_body", False)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: a disconnect, as the server reports it
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, send) -> None:
        body = json.dumps({"error": f"request body over {self.limit} bytes"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": [*headers, (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class ApiError(Exception):
    """A client mistake the handlers name: answered `{"error": message}` with `status` (and `headers`)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        self.status, self.message, self.headers = status, message, headers


def add_middleware(app: FastAPI, *, log_queries: bool = False, cors_origins: Sequence[str] = ()) -> None:
    """HEAD as GET, the access log (outside it, so HEAD is logged as HEAD), CORS for `cors_origins`
    only (off when empty), and the security headers outside all of them."""
    app.add_middleware(BodyLimit)
    app.add_middleware(HeadAsGet)
    app.add_middleware(AccessLog, log_queries=log_queries)
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET"])
    app.add_middleware(SecurityHeaders)


def add_error_handlers(app: FastAPI) -> None:
    """Every error answers `{"error": ...}` (validation errors also with `detail`); a 405 names the
    allowed methods in `Allow`; a 404 for a route plus a trailing slash is a relative redirect to the
    route (`slash_redirect`); an unexpected exception is a bare 500 (logged, not shown)."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(validation_body(exc.errors()), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse | RedirectResponse:
        if exc.status_code == 404 and (location := slash_redirect(request)) is not None:
            return RedirectResponse(location, status_code=307)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            allowed = [m.strip() for m in headers.get("Allow", "GET").split(",") if m.strip()]
            if "GET" in allowed and "HEAD" not in allowed:
                allowed.append("HEAD")  # HeadAsGet answers it
            headers["Allow"] = ", ".join(allowed)
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def server_error(_: Request, exc: Exception) -> JSONResponse:
        # answered by Starlette's outermost middleware, past SecurityHeaders: the headers go on here
        return JSONResponse({"error": "internal server error"}, status_code=500, headers=SECURITY_HEADERS)


def slash_redirect(request: Request) -> str | None:
    """For a path that is a route plus one trailing slash (`/docs/`), the route's path and the query as a
    relative URL (`/docs`), else None. Starlette's own redirect is absolute and built from the Host
    header (`Host: evil.example` gave `location: http://evil.example/...`); this one names no host, and
    a path starting `//` (which a browser would read as another host) never redirects."""
    scope = request.scope
    path = scope.get("path", "")
    if len(path) < 2 or not path.endswith("/") or path.startswith("//"):
        return None
    target = {**scope, "path": path[:-1]}
    if not any(route.matches(target)[0] != Match.NONE for route in request.app.router.routes):
        return None
    raw = scope.get("raw_path") or path.encode()
    location = (raw[:-1] if raw.endswith(b"/") else raw).decode("latin-1")
    if location.startswith("//") or not location.startswith("/"):
        return None
    query = scope.get("query_string", b"").decode("latin-1")
    return location + ("?" + query if query else "")


def validation_body(errors: Sequence[dict]) -> dict:
    """One readable message for pydantic's validation errors, e.g. "k: Input should be ..."."""
    parts = []
    for e in errors:
        loc = list(e.get("loc", ()))
        if loc and loc[0] in ("query", "path"):  # where the parameter came from, not part of its name
            loc = loc[1:]
        where = ".".join(str(x) for x in loc)
        if where == "q" and e.get("type") in ("string_too_short", "string_pattern_mismatch"):
            parts.append("empty query: q must contain some text")
        else:
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
    detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in errors]
    return {"error": "; ".join(parts) or "invalid request", "detail": detail}
