"""The write and admin routes, off unless the server has an admin token (`PROMPT_RETRIEVER_ADMIN_TOKEN`):

    PUT    /api/prompts/{id}    add or update one prompt (JSON: genre, theme, title, text, kind)
    DELETE /api/prompts/{id}    remove one prompt
    POST   /api/admin/reload    switch to another run (JSON {"run": PATH}) or reload the one served

Without a token they are not registered: the reload route is a 404, PUT and DELETE on a prompt are the
405 (`Allow: GET, HEAD`) of a method the prompt route does not answer, and /openapi.json names none of
them. With one, each needs `Authorization: Bearer TOKEN` (compared in constant time; 401 otherwise). Each write is
persisted to the served index (or run) before it is answered, and the work (embedding, writing, loading
another run) runs in a thread, off the event loop, while searches go on being answered.
"""

from __future__ import annotations

import hmac
from pathlib import Path

from fastapi import Body, Depends, FastAPI, Header
from fastapi import Path as FastPath
from starlette.concurrency import run_in_threadpool

from ..corpus import ID_PATTERN
from ..errors import IndexLoadError, InputError, MissingError
from ..search.live import prompt_from_record
from .live import LiveState
from .middleware import ApiError
from .schemas import InfoOut, PromptIn, ReloadIn, WriteOut

UNAUTHORIZED = "a valid admin token is required (Authorization: Bearer TOKEN)"
ID_DOC = "1-120 letters, digits, '.', '_', '-'; starts alphanumeric"


def check_token(expected: str, authorization: str | None) -> None:
    """401 unless `authorization` is `Bearer <expected>` (constant-time comparison)."""
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise ApiError(
            401, "a valid admin token is required (Authorization: Bearer TOKEN)", {"WWW-Authenticate": "Bearer"}
        )


def _write_out(live: LiveState, status: str, prompt_id: str) -> WriteOut:
    state = live.state
    return WriteOut(status=status, id=prompt_id, prompts=len(state.prompts), drift=state.info.drift)


def add_admin_routes(app: FastAPI, live: LiveState, token: str | None) -> None:
    """The write routes and the reload route (see the module's docstring); without `token`, none: POST
    /api/admin/reload is a 404, and PUT or DELETE on /api/prompts/{id} the 405 of any method a route
    does not answer (`Allow: GET, HEAD`), as if this module did not exist."""
    if token is None:
        return

    async def authorized(authorization: str | None = Header(None, include_in_schema=False)) -> None:
        check_token(token, authorization)  # before the body is validated: no token, no 422 either

    auth = [Depends(authorized)]

    @app.put("/api/prompts/{prompt_id}", response_model=WriteOut, dependencies=auth)
    async def put_prompt(
        prompt_id: str = FastPath(..., pattern=ID_PATTERN.pattern, description=ID_DOC),
        body: PromptIn = Body(...),
    ) -> WriteOut:
        try:
            prompt = prompt_from_record(prompt_id, body.model_dump(exclude_none=True))
        except InputError as exc:
            raise ApiError(422, str(exc)) from None
        try:
            status = await run_in_threadpool(live.put, prompt)
        except InputError as exc:  # a clash, or nowhere to write
            raise ApiError(409, str(exc)) from None
        return _write_out(live, status, prompt_id)

    @app.delete("/api/prompts/{prompt_id}", response_model=WriteOut, dependencies=auth)
    async def delete_prompt(
        prompt_id: str = FastPath(..., pattern=ID_PATTERN.pattern, description=ID_DOC),
    ) -> WriteOut:
        try:
            await run_in_threadpool(live.delete, prompt_id)
        except MissingError as exc:
            raise ApiError(404, str(exc)) from None
        except InputError as exc:
            raise ApiError(409, str(exc)) from None
        return _write_out(live, "removed", prompt_id)

    @app.post("/api/admin/reload", response_model=InfoOut, response_model_by_alias=True, dependencies=auth)
    async def reload(body: ReloadIn | None = Body(None)) -> InfoOut:
        run = Path(body.run) if body is not None and body.run else None
        try:
            state = await run_in_threadpool(live.reload, run)
        except (IndexLoadError, InputError) as exc:  # the old system keeps serving
            raise ApiError(409, str(exc)) from None
        return state.info
