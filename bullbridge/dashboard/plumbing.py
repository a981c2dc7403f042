"""The dashboard's HTTP plumbing: responses, query parameters, action forms, the token, security headers.

Nothing here knows a route; :mod:`bullbridge.dashboard.handlers` builds on it.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from aiohttp import web

from bullbridge.errors import ConfigurationError
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


#: Largest body an action accepts (its fields are an id, a state, an age, a token).
MAX_BODY_BYTES = 16 * 1024
#: Shortest token actions accept: 16 characters (generate one with ``python -c "import secrets;
#: print(secrets.token_urlsafe(24))"``).
MIN_TOKEN_LENGTH = 16
#: The Host names the dashboard answers by default (against DNS rebinding): loopback only.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def check_token(token: str | None) -> str:
    """The token actions require, or a ``ValueError`` saying why it cannot protect them."""
    if token is None or not token.strip():
        raise ConfigurationError("actions need a token: create_app(..., allow_actions=True, token='...')")
    if len(token.strip()) < MIN_TOKEN_LENGTH:
        raise ConfigurationError(
            f"the dashboard token has {len(token.strip())} characters; actions need at least "
            f"{MIN_TOKEN_LENGTH} (e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))')"
        )
    return token


def host_allowed(request: web.Request, allowed: frozenset[str]) -> bool:
    """Whether the request's ``Host`` (without its port) is one the dashboard answers by."""
    if "*" in allowed:
        return True
    host = (request.host or "").strip().lower()
    if host.startswith("["):  # [::1]:8080
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host in allowed


def header_token(request: web.Request) -> str:
    """The token in the headers: ``Authorization: Bearer ...``, else ``X-Bullbridge-Token``."""
    header = request.headers.get("Authorization", "")
    bearer = header[7:] if header.startswith("Bearer ") else ""
    return bearer or request.headers.get("X-Bullbridge-Token", "")


def small_form(request: web.Request) -> bool:
    """A posted HTML form of a bounded size: the only body read before its token is checked."""
    length = request.content_length
    return request.content_type in FORM_TYPES and length is not None and length <= MAX_BODY_BYTES


async def read_form(request: web.Request) -> dict[str, str]:
    """An action's fields: a JSON object body (anything else in JSON gives none), else the posted form.
    A body that is not what its content type says is a 400, never a 500."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY_BYTES, actual_size=request.content_length)
    try:
        if request.content_type == "application/json":
            body = await request.json()
            return {k: str(v) for k, v in body.items()} if isinstance(body, dict) else {}
        return {k: str(v) for k, v in (await request.post()).items()}
    except (ValueError, UnicodeDecodeError) as exc:
        raise web.HTTPBadRequest(text=f"the request body is not valid {request.content_type}: {exc}") from None


def offered_token(request: web.Request, form: dict[str, str]) -> str:
    """The token a request carries: ``Authorization: Bearer``, else ``X-Bullbridge-Token``, else a ``token`` field."""
    return header_token(request) or form.get("token", "")


def token_matches(offered: str, token: str) -> bool:
    """Compared in constant time."""
    return hmac.compare_digest(offered.encode(), token.encode())
