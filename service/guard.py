"""The request guard: a raw ASGI layer in front of the BentoML service's routes.

BentoML reads a request body whole before anything can look at it, answers bad input with
pydantic's 400s, and its timeout answers a stalled body with a 504. This layer does what a service
exposed to hostile clients needs around that:

- the API key, when one is configured (`/predict` and `/metadata`; the health endpoints stay open);
- the content type (415) before any body is read;
- the body, read as it arrives under the size limit, chunked or not: over the limit it is read on
  and dropped (memory stays flat) up to DRAIN_BOUND, so the client reads a clean 413 instead of a
  reset; a body that stops arriving for `body_timeout_s` gets a 408;
- a bare array of beats (the seed tutorial's client) goes on as `{"beats": [...]}`, the shape the
  API declares, marked so that its answer is a bare array of booleans;
- the message: BentoML validates the body with the contract's pydantic model (one parse on the
  happy path); when it refuses one, `service.schema` names the problem and the status (the same
  words and codes as the Lambda handler's).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from service.schema import Limits, RequestError, check_api_key, check_content_type, dumps, error_body, parse_predict_request

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DRAIN_BOUND = 64 * 2**20  # read and drop this much of an oversized body, so the client sees the 413
PREDICT, METADATA = "/predict", "/metadata"
BARE_STATE = "heartgate.bare"  # scope["state"]: the request was a bare array of beats


@dataclass(frozen=True)
class GuardSettings:
    limits: Limits
    api_key: str | None = None  # None: no key required
    body_timeout_s: float = 5.0  # below BentoML's traffic timeout, which would answer 504

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> GuardSettings:
        """HEARTGATE_API_KEY (in the served process's environment only: the deploy passes it
        without writing it down) and HEARTGATE_SERVE__BODY_TIMEOUT_S."""
        return cls(
            limits=Limits.from_environ(environ),
            api_key=environ.get("HEARTGATE_API_KEY") or None,
            body_timeout_s=float(environ.get("HEARTGATE_SERVE__BODY_TIMEOUT_S", cls.body_timeout_s)),
        )


class _Refused(Exception):
    def __init__(self, status: int, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status, self.message, self.close = status, message, close


class RequestGuard:
    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], settings: GuardSettings | None = None) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if scope["type"] != "http" or path not in (PREDICT, METADATA):
            return await self.app(scope, receive, send)
        if self.settings is None:  # read once, in the worker, when the first request comes
            self.settings = GuardSettings.from_environ(os.environ)
        settings = self.settings
        headers = _headers(scope)
        try:
            try:
                check_api_key(headers.get("authorization"), settings.api_key)
            except RequestError as refused:
                raise _Refused(refused.status, refused.message) from None
            if path == PREDICT and scope["method"] == "POST":
                body = await _read_body(headers, receive, settings)
                bare = scope.setdefault("state", {})[BARE_STATE] = body.lstrip()[:1] == b"["
                receive = _replaying(body, receive, bare)
                send = _explaining(send, body, headers.get("content-type"), settings.limits)
        except _Refused as refused:
            return await _answer(send, refused)
        await self.app(scope, receive, send)


def _replaying(body: bytes, receive: Receive, bare: bool) -> Receive:
    """A `receive` that gives the app behind the body already read (a bare array wrapped: when it
    is not valid JSON, neither is the wrapped body, and the explainer reads the original)."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()  # http.disconnect, when the client goes
        replayed = True
        return {"type": "http.request", "body": b'{"beats":' + body + b"}" if bare else body, "more_body": False}

    return replay


def _explaining(send: Send, body: bytes, content_type: str | None, limits: Limits) -> Send:
    """A `send` that turns BentoML's 400 (pydantic refused the body) into `service.schema`'s 4xx
    naming the problem. Should the two ever disagree, BentoML's answer goes out as it is."""
    replaced = False

    async def explain(message: Message) -> None:
        nonlocal replaced
        if message["type"] == "http.response.start" and message["status"] == 400:
            try:
                parse_predict_request(body, content_type, limits)
            except RequestError as bad:
                replaced = True
                return await _answer(send, _Refused(bad.status, bad.message))
        if not replaced:
            await send(message)

    return explain


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers", [])}


async def _read_body(headers: Mapping[str, str], receive: Receive, settings: GuardSettings) -> bytes:
    try:
        check_content_type(headers.get("content-type"))
    except RequestError as bad:
        raise _Refused(bad.status, bad.message, close=True) from None
    limit, declared = settings.limits.max_body_bytes, headers.get("content-length")

    def too_large(size: str) -> _Refused:
        return _Refused(413, f"body is {size} bytes; the limit is {limit}", close=True)

    if declared is not None and declared.isdigit() and int(declared) > DRAIN_BOUND:
        raise too_large(declared)  # not worth reading: the client may see the connection close
    chunks: list[bytes] = []
    size, more = 0, True
    while more:
        try:
            message = await asyncio.wait_for(receive(), settings.body_timeout_s)
        except TimeoutError:
            raise _Refused(408, f"the body stopped arriving: nothing for {settings.body_timeout_s:g} s", close=True) from None
        if message["type"] == "http.disconnect":
            raise _Refused(400, "the client closed the connection before the body ended", close=True)
        chunk, more = message.get("body", b""), message.get("more_body", False)
        size += len(chunk)
        if size > DRAIN_BOUND:
            raise too_large(f"over {DRAIN_BOUND}")
        if size <= limit:
            chunks.append(chunk)
        # Over the limit: read on to the end (the client then reads the 413), keep nothing.
    if size > limit:
        raise too_large(str(size))
    return b"".join(chunks)


async def _answer(send: Send, refused: _Refused) -> None:
    body = dumps(error_body(refused.message))
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if refused.status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    if refused.close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
