"""The web application: the page, and the JSON API the page uses (documented at
/openapi.json).

Safe by default: every request carries the room's token (`?token=` on the page's URL, as
Jupyter prints it; the page then sends it as `Authorization: Bearer ...`); a request that
changes state must carry it in that header, not in the URL, must send JSON, and, when the
browser says where it comes from (`Origin`), come from this server's own page, so another
site open in the same browser cannot make the room solve. Bodies are bounded; bad input is a
422 with every problem in words; anything unexpected is a 500 with a one-line message (the
traceback goes to the server's terminal, never to the page).
"""

from __future__ import annotations

import html
import json
import logging
import secrets
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from allocator.errors import InputError
from allocator.serve.edits import MAX_CHANGES
from allocator.serve.room import Busy, Room, alt_folder
from allocator.version import __version__

MAX_BODY = 256 * 1024  # bytes: 500 changes fit in a tenth of it
log = logging.getLogger("allocator.serve")


class ChangeIn(BaseModel):
    """One cell, its row named by the table's id column(s)."""

    table: str = Field(description="budgets, sites or targets", examples=["budgets"])
    id: str | list[str] = Field(description="the row's id: budget_id, site_id, or "
                                "'site/service' (or [site, service]) for targets",
                                examples=["B-SOU"])
    column: str = Field(description="budgets: amount; sites: capacity_fte, min_fte; "
                        "targets: demand, min_level", examples=["amount"])
    value: float | str | None = Field(description="the new value (null: no capacity)",
                                      examples=[4500000])


class WhatIfIn(BaseModel):
    changes: list[ChangeIn] = Field(max_length=MAX_CHANGES)
    name: str | None = Field(None, description="keep the answer as an alternative of this "
                             "name (replacing one of the same name)")


def _token_of(scope: Scope, query_ok: bool) -> str | None:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1")
               for k, v in scope.get("headers", [])}
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    if "x-allocator-token" in headers:
        return headers["x-allocator-token"].strip()
    if query_ok:
        from urllib.parse import parse_qs

        found = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
        if found:
            return found[0]
    return None


class Guard:
    """Token, same-origin and size checks before any route runs (pure ASGI, so a refused
    request costs nothing and reaches no solver)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        safe = method in ("GET", "HEAD")
        given = _token_of(scope, query_ok=safe)
        if given is None or not secrets.compare_digest(given.encode(), self.token.encode()):
            await _refuse(scope, send, 401, "a valid token is needed: open the URL printed "
                          "when the server started (…/?token=...), or send "
                          "'Authorization: Bearer TOKEN'")
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        if not safe:
            origin = headers.get("origin")
            host = headers.get("host", "")
            if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
                await _refuse(scope, send, 403, f"cross-site request refused (from {origin})")
                return
            if method == "POST" and not headers.get("content-type", "").startswith(
                    "application/json"):
                await _refuse(scope, send, 415, "send JSON (Content-Type: application/json)")
                return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            await _refuse(scope, send, 413, f"request body over {MAX_BODY // 1024} KiB")
            return
        seen = 0

        async def bounded() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > MAX_BODY:
                    raise InputError(f"request body over {MAX_BODY // 1024} KiB", "request")
            return message

        await self.app(scope, bounded, send)


async def _refuse(scope: Scope, send: Send, status: int, message: str) -> None:
    wants_html = scope["method"] == "GET" and not scope["path"].startswith(("/api", "/open"))
    if wants_html:
        body = (f"<!doctype html><meta charset=utf-8><title>allocator serve</title>"
                f"<p>{html.escape(message)}</p>").encode()
        kind = b"text/html; charset=utf-8"
    else:
        body = json.dumps({"error": message, "problems": []}).encode()
        kind = b"application/json"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})


def _asset(name: str) -> str:
    return (resources.files("allocator.serve") / "static" / name).read_text(encoding="utf-8")


def page() -> str:
    """index.html with its stylesheet and script inlined: one response, so the page needs
    no second request that would have to carry the token."""
    text = _asset("index.html")
    text = text.replace("/*STYLE*/", _asset("style.css"))
    return text.replace("/*SCRIPT*/", _asset("app.js").replace("</", "<\\/"))


def _problems(exc: InputError) -> list[str]:
    return [str(p) for p in exc.problems]


def make_app(room: Room, token: str) -> ASGIApp:
    app = FastAPI(title="allocator serve", version=__version__,
                  description="The negotiation room's API: the same one its page uses. Every "
                  "request needs the token (Authorization: Bearer TOKEN).",
                  docs_url=None, redoc_url=None)  # Swagger's page loads from a CDN: not here

    @app.exception_handler(InputError)
    async def bad_input(_request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"error": "bad input", "problems": _problems(exc)}, 422)

    @app.exception_handler(RequestValidationError)
    async def bad_shape(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            problems.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
        return JSONResponse({"error": "bad input", "problems": problems}, 422)

    @app.exception_handler(Busy)
    async def busy(_request: Request, exc: Busy) -> JSONResponse:
        return JSONResponse({"error": str(exc), "problems": []}, 409,
                            headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def crash(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error")  # the traceback on the server's terminal only
        return JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}",
                             "problems": []}, 500)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(page(), headers={
            "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
            # Only what this page itself holds: no other host is ever contacted.
            "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
            "style-src 'unsafe-inline'; img-src data:; connect-src 'self'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"})

    @app.get("/api/run", summary="The current state: base figures, editable inputs, "
             "alternatives")
    def run() -> dict[str, Any]:
        return room.state()

    @app.post("/api/whatif", summary="Warm re-solve with changed cells; the figures and the "
              "difference against the base")
    def whatif(body: WhatIfIn) -> dict[str, Any]:
        return room.whatif([c.model_dump() for c in body.changes], body.name)

    @app.get("/api/curve", summary="The exact value curve of one budget: each stage's "
             "optimum against its amount (parametric analysis), breakpoints and what binds")
    def curve(budget: str, low: float | None = None, high: float | None = None
              ) -> dict[str, Any]:
        return room.curve(budget, low, high)

    @app.get("/api/alternatives", summary="The base and every kept alternative side by side")
    def alternatives() -> dict[str, Any]:
        return room.compare()

    @app.get("/api/alternatives/{name}", summary="One kept alternative, in full")
    def alternative(name: str) -> dict[str, Any]:
        from allocator.serve.outcome import diff

        alt = room.alternative(name)
        return {"name": alt.name, "changes": [c.as_json() for c in alt.changes],
                "outcome": alt.outcome.as_json(),
                "difference": diff(room.base, alt.outcome) if alt.outcome.solved else None}

    @app.delete("/api/alternatives/{name}", summary="Forget a kept alternative")
    def forget(name: str) -> dict[str, Any]:
        room.forget(name)
        return {"deleted": name}

    @app.get("/api/alternatives/{name}/export",
             summary="The alternative as scenario.toml plus its edited tables (a zip)")
    def export(name: str) -> Response:
        data = room.export(name)
        return Response(data, media_type="application/zip", headers={
            "Content-Disposition": f'attachment; filename="{alt_folder(name)}.zip"'})

    return Guard(app, token)
