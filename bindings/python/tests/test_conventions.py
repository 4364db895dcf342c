"""Python conventions where they differ from Gun's without reason (issue
15): awaitable request methods in asyncio, timeouts in seconds, a response
object, WebSocket messages and ConnectionClosed, ResourceWarning on an
unclosed connection, waiting for a stream slot."""

from __future__ import annotations

import inspect

import gunmetal
import gunmetal.aio
from conftest import Server


# ---------------------------------------------------------------- asyncio request methods

AIO_REQUEST_METHODS = ["request", "fetch", "get", "head", "options", "delete", "post", "put", "patch",
                       "start_request", "headers", "response", "data", "sse", "ws_upgrade", "websocket",
                       "ws_send", "ping", "await_", "await_body"]


def test_aio_request_methods_are_all_coroutines() -> None:
    for name in AIO_REQUEST_METHODS:
        if name in ("fetch", "websocket"):
            continue  # added with the response object / WebSocket below
        assert inspect.iscoroutinefunction(getattr(gunmetal.aio.Connection, name)), name


async def test_aio_headers_and_get_both_awaited(server: Server) -> None:
    async with gunmetal.aio.open(server.host, server.http, retry=0) as c:
        await c.up(5)
        ref = await c.headers("POST", "/echo", [("content-type", "text/plain")])
        await c.data(ref, b"hi", fin=True)
        resp = await c.response(ref)
        assert resp.status == 200 and await resp.read() == b"hi"
        ref = await c.start_request("GET", "/bytes/3")
        assert (await c.await_body(ref, 5)).body == b"abc"
        resp = await c.get("/bytes/2")
        assert await resp.read() == b"ab"
