"""HTTP/2 (h2c prior knowledge and TLS+ALPN) when the library has it:
server push, per-stream flow, cancel (RST_STREAM), many streams."""

from __future__ import annotations

import asyncio
import time
from typing import Iterator, List

import pytest

import gunmetal
import gunmetal.aio
from gunmetal import EventKind
from conftest import Server


@pytest.fixture
def h2(server: Server) -> Iterator[gunmetal.Connection]:
    with gunmetal.open(server.host, server.http, protocols=["http2"], retry=0) as c:
        assert c.await_up(5) == "http2"
        yield c


def test_tls_alpn_picks_h2_by_default(server: Server) -> None:
    with gunmetal.open("localhost", server.https, transport="tls", tls_opts={"cacertfile": server.ca}) as c:
        assert c.await_up(5) == "http2"
        assert c.info()["protocol"] == "http2"
        assert c.await_body(c.get("/bytes/7"), 5).body == b"abcdefg"


def test_push(h2: gunmetal.Connection) -> None:
    ref = h2.get("/push")
    evs: List[gunmetal.Event] = []
    while not any(e.ref == ref and e.fin for e in evs):
        evs += h2.queue.poll(256, 5)
    pushes = [e for e in evs if e.kind == EventKind.PUSH]
    assert {p.uri.rsplit("/", 1)[-1] for p in pushes if p.uri} == {"10", "pushed"}
    assert all(p.ref == ref and p.method == "GET" and p.new_ref not in (0, ref) for p in pushes)
    # the pushed streams' events carry new_ref
    bodies = {p.new_ref: b"".join(e.data for e in evs if e.ref == p.new_ref and e.kind == EventKind.DATA)
              for p in pushes}
    for r in bodies:
        if not any(e.ref == r and e.fin for e in evs):
            bodies[r] += h2.await_body(r, 5).body
    assert sorted(bodies.values()) == [b"abcdefghij", b"pushed"]


def test_flow_and_cancel_on_h2(h2: gunmetal.Connection) -> None:
    """Gun's flow on HTTP/2 stops the stream's WINDOW_UPDATEs: the server
    sends at most what the window (http2_opts.initial_stream_window_size)
    allows, then waits for update_flow."""
    size = 32 << 20
    ref = h2.get(f"/bytes/{size}", flow=1)
    got = 0
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            ev = h2.await_(ref, 0.2)
        except gunmetal.Timeout:
            continue
        got += len(ev.data)
    info = h2.stream_info(ref)
    assert info is not None and info["flow"] == "0"
    assert 0 < got <= 8_000_000 + 65535, got  # the initial window, not the body
    other = h2.get("/bytes/3")  # one stream paused does not stop the others
    assert h2.await_body(other, 5).body == b"abc"
    h2.update_flow(ref, 1_000_000)
    while True:
        ev = h2.await_(ref, 5)
        got += len(ev.data)
        if ev.fin:
            break
    assert got == size
    slow = h2.get("/slow?chunks=20&delay=20&size=10")
    assert h2.await_(slow, 5).kind == EventKind.RESPONSE
    h2.cancel(slow)  # RST_STREAM
    assert h2.stream_info(slow) is None
    assert h2.await_body(h2.get("/bytes/2"), 5).body == b"ab"


def test_many_streams_h2(h2: gunmetal.Connection) -> None:
    refs = [h2.get(f"/bytes/{i}") for i in range(1, 101)]
    for i, r in enumerate(refs, 1):
        assert len(h2.await_body(r, 10).body) == i


async def test_aio_push_and_window(server: Server) -> None:
    async with gunmetal.aio.open(server.host, server.http, protocols=["http2"], window=2) as c:
        await c.up(5)
        resp = await c.get("/push")
        assert await resp.read() == b"main"
        assert len(resp.pushes) == 2
        bodies = sorted([await (await c.response(p.new_ref)).read() for p in resp.pushes])
        assert bodies == [b"abcdefghij", b"pushed"]
        # On HTTP/2 the flow stops WINDOW_UPDATEs (as in Gun): what a reader
        # that does not read holds is bounded by the stream window, not the body.
        big = await c.get(f"/bytes/{32 << 20}")
        await asyncio.sleep(0.5)
        held = sum(len(e.data) for e in c._streams[big.ref].events)
        assert held <= 8_000_000 + 65535, held
        n = 0
        async for chunk in big:
            n += len(chunk)
        assert n == 32 << 20


async def test_aio_cancel_h2(server: Server) -> None:
    async with gunmetal.aio.open(server.host, server.http, protocols=["http2"]) as c:
        await c.up(5)
        task = asyncio.ensure_future(c.get("/delay/2000"))
        await asyncio.sleep(0.05)
        (ref,) = list(c._streams)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert c.stream_info(ref) is None  # reset at once on HTTP/2
        assert await (await c.get("/bytes/1")).read() == b"a"
