"""Reaching a Qdrant server, cluster or qdrant-client's local mode: `connect` (a client for a location),
`location_of` (where a client points, never its key), `is_local` and `client_for` (what `QdrantIndex`
records and whether it owns the client it made).

>>> client = connect("http://localhost:6333")   # key from QDRANT_API_KEY            # doctest: +SKIP
>>> location_of(client)                                                               # doctest: +SKIP
'http://localhost:6333'
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..settings import qdrant_api_key

SERVER_SCHEMES = ("http://", "https://")


def is_server_url(location: str | None) -> bool:
    """Whether `location` names a Qdrant server (anything else is qdrant-client's local mode)."""
    return (location or "").startswith(SERVER_SCHEMES)


def connect(location: str, *, api_key: str | None = None, timeout: int | None = None, **options):
    """A `QdrantClient` for `location`: a URL (`http(s)://...`, the key from `api_key` or `QDRANT_API_KEY`;
    `options` go to `QdrantClient`, e.g. `prefer_grpc=True`), `":memory:"` or a folder (local mode)."""
    from qdrant_client import QdrantClient

    if is_server_url(location):
        return QdrantClient(url=location, api_key=api_key or qdrant_api_key(), timeout=timeout, **options)
    if location == ":memory:":
        return QdrantClient(location=":memory:")
    return QdrantClient(path=location)


def server_url(url: str) -> str:
    """`url` if it names a Qdrant server (`http://` or `https://`); an InputError otherwise, since `connect`
    would take anything else, e.g. `localhost:6333`, for a local-mode folder and search an empty one.

    >>> server_url("http://localhost:6333")
    'http://localhost:6333'
    """
    if not is_server_url(url):
        raise InputError(f"Qdrant server URL {url!r:.200} must start with http:// or https:// (e.g. http://{url:.100})")
    return url


def location_of(client) -> str | None:
    """Where `client` points, as `connect` takes it (never its API key); None when it cannot be told."""
    opts = getattr(client, "init_options", None) or {}
    if opts.get("url"):
        return str(opts["url"])
    if opts.get("path"):
        return str(opts["path"])
    if opts.get("location"):
        return str(opts["location"])
    if opts.get("host"):
        scheme = "https" if opts.get("https") else "http"
        return f"{scheme}://{opts['host']}:{opts.get('port') or 6333}"
    return None


def is_local(url: str | None) -> bool:
    """Whether a recorded location is qdrant-client's local mode (exact search, no use for search params)."""
    return not is_server_url(url)


def client_for(location, api_key: str | None) -> tuple[object, bool, str | None]:
    """(client, whether this module made it and so closes it, location to record)."""
    if isinstance(location, str | Path):
        location = str(location)
        return connect(location, api_key=api_key), True, location
    return location, False, location_of(location)
