"""A streamed body given before UP is held by the library and goes out on
UP, after the request, in order (Gun's behaviour; it used to be NotUp)."""

from __future__ import annotations

import select
import socket

import pytest

import gunmetal
import gunmetal.aio


def _bound() -> socket.socket:
    # Bound, not listening: connecting is refused (and retried) until listen().
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s


def _serve_one(ls: socket.socket, body_len: int) -> bytes:
    ls.listen(4)
    assert select.select([ls], [], [], 10)[0], "no connection came"
    s, _ = ls.accept()
    with s:
        s.settimeout(10)
        buf = b""
        while b"\r\n\r\n" not in buf or len(buf.split(b"\r\n\r\n", 1)[1]) < body_len:
            chunk = s.recv(4096)
            assert chunk, f"closed after {buf!r}"
            buf += chunk
        s.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        return buf


def test_data_held_until_up() -> None:
    with _bound() as ls:
        port = ls.getsockname()[1]
        with gunmetal.open("127.0.0.1", port, retry=1000, retry_timeout=20) as c:
            ref = c.request("PUT", "/up", [("content-length", "6")], stream=True)
            c.data(ref, b"abc")
            c.data(ref, b"def", fin=True)
            with pytest.raises(gunmetal.BadState):
                c.data(ref, b"x")  # after fin
            req = _serve_one(ls, 6)
            assert req.startswith(b"PUT /up HTTP/1.1\r\n")
            assert req.endswith(b"\r\n\r\nabcdef")
            b = c.await_body(ref, 10)
            assert b.status == 200 and b.body == b"ok"


async def test_aio_data_held_until_up() -> None:
    with _bound() as ls:
        port = ls.getsockname()[1]
        async with gunmetal.aio.open("127.0.0.1", port, retry=1000, retry_timeout=20) as c:
            ref = await c.headers("PUT", "/up", [("content-length", "4")])
            await c.data(ref, b"wx")
            await c.data(ref, b"yz", fin=True)
            req = _serve_one(ls, 4)
            assert req.endswith(b"\r\n\r\nwxyz")
            assert await (await c.response(ref)).read() == b"ok"
