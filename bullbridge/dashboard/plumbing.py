"""The dashboard's HTTP plumbing: responses, query parameters, action forms, the token, security headers.

Nothing here knows a route; :mod:`bullbridge.dashboard.handlers` builds on it.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from aiohttp import web

from bullbridge.jsonapi import to_json
from bullbridge.monitor.jobs import STATES

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def html_response(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html")


def json_response(value: Any, status: int = 200) -> web.Response:
    """``value`` (dataclasses included) as bullbridge's JSON API spells it."""
    return web.Response(
        text=json.dumps(to_json(value), ensure_ascii=False, default=str), status=status, content_type="application/json"
    )


def add_security_headers(response: web.StreamResponse) -> None:
    """The CSP and friends, unless the handler set its own."""
    for key, value in SECURITY_HEADERS.items():
        response.headers.setdefault(key, value)


def int_param(request: web.Request, name: str, default: int, low: int = 0, high: int | None = None) -> int:
    """Query parameter ``name`` as an int clamped to ``[low, high]``; 400 if it is not a number."""
    raw = request.query.get(name)
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be a number") from None
    value = max(low, value)
    return min(value, high) if high is not None else value


def state_param(request: web.Request) -> str:
    """Query parameter ``state`` (default ``waiting``); 400 unless it is one of the job states."""
    state = request.query.get("state", "waiting")
    if state not in STATES:
        raise web.HTTPBadRequest(text=f"unknown state {state!r}")
    return state


async def read_form(request: web.Request) -> dict[str, str]:
    """An action's fields: a JSON object body (anything else in JSON gives none), else the posted form."""
    if request.content_type == "application/json":
        body = await request.json()
        return {k: str(v) for k, v in body.items()} if isinstance(body, dict) else {}
    return {k: str(v) for k, v in (await request.post()).items()}


def offered_token(request: web.Request, form: dict[str, str]) -> str:
    """The token a request carries: ``Authorization: Bearer``, else ``X-Bullbridge-Token``, else a ``token`` field."""
    header = request.headers.get("Authorization", "")
    bearer = header[7:] if header.startswith("Bearer ") else ""
    return bearer or request.headers.get("X-Bullbridge-Token", "") or form.get("token", "")


def token_matches(offered: str, token: str) -> bool:
    """Compared in constant time."""
    return hmac.compare_digest(offered.encode(), token.encode())
