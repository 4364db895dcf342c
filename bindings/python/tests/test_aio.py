"""gunmetal.aio against the project's test server: every method, flow,
cancellation, the drain loop never blocking the loop thread."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, AsyncIterator, Dict, List

import pytest

import gunmetal
import gunmetal.aio
from gunmetal import EventKind
from conftest import Server


@pytest.fixture
async def aconn(server: Server) -> AsyncIterator[gunmetal.aio.Connection]:
    async with gunmetal.aio.open(server.host, server.http, retry=0) as c:
        await c.up(5)
        yield c


async def jreply(resp: gunmetal.aio.Response) -> Dict[str, Any]:
    assert resp.status == 200
    return json.loads(await resp.read())  # type: ignore[no-any-return]


async def test_open_up_get_read(server: Server) -> None:
    async with gunmetal.aio.open(server.host, server.http) as c:
        assert c.state == "connecting"
        assert await c.up(5) == "http"
        assert await c.await_up(5) == "http"  # already up: at once
        assert c.state == "up" and c.protocol == "http"
        resp = await c.get("/bytes/10", [("x-a", "1")])
        assert resp.status == 200 and resp.header("Content-Length") == "10"
        assert resp.header("x-nope") is None
        assert await resp.read() == b"abcdefghij"
        assert resp.done
        assert "gunmetal.aio.Connection" in repr(c) and "Response" in repr(resp)
    assert c.closed and c.state == "closed"


async def test_open_unix(server: Server) -> None:
    async with gunmetal.aio.open_unix(server.unix) as c:
        assert await c.up(5) == "http"
        assert await (await c.get("/bytes/4")).read() == b"abcd"


async def test_every_method(aconn: gunmetal.aio.Connection) -> None:
    c = aconn
    assert (await jreply(await c.get("/headers")))["method"] == "GET"
    assert (await jreply(await c.delete("/headers")))["method"] == "DELETE"
    assert (await jreply(await c.options("/headers")))["method"] == "OPTIONS"
    r = await jreply(await c.post("/headers", [], b"12345"))
    assert (r["method"], r["body_len"]) == ("POST", 5)
    r = await jreply(await c.put("/headers", None, bytearray(b"xyz")))
    assert (r["method"], r["body_len"]) == ("PUT", 3)
    r = await jreply(await c.patch("/headers", body=memoryview(b"ab")))
    assert (r["method"], r["body_len"]) == ("PATCH", 2)
    r = await jreply(await c.request("PROPFIND", "/headers", {"depth": "1"}, "<a/>"))
    assert (r["method"], r["headers"]["depth"], r["body_len"]) == ("PROPFIND", ["1"], 4)
    h = await c.head("/bytes/100")
    assert h.status == 200 and h.done and await h.read() == b""


async def test_async_for_chunks(aconn: gunmetal.aio.Connection) -> None:
    resp = await aconn.get("/slow?chunks=5&delay=10&size=7")
    chunks = [c async for c in resp]
    assert b"".join(chunks) == b"abcdefghijklmnopqrstuvwxyzabcdefghi"
    assert len(chunks) >= 2
    assert [c async for c in resp] == []  # done


async def test_trailers_informs(aconn: gunmetal.aio.Connection) -> None:
    resp = await aconn.get("/trailers", [("te", "trailers")])
    assert await resp.read() == b"hello trailers"
    assert dict(resp.trailers) == {"x-checksum": "abc123", "x-trailer-two": "2"}
    resp = await aconn.get("/inform/2")
    assert [e.status for e in resp.informs] == [103, 103] and resp.status == 200
    assert await resp.read() == b"ok"


async def test_headers_data_response(aconn: gunmetal.aio.Connection) -> None:
    ref = await aconn.headers("POST", "/echo", [("content-type", "text/plain")])
    await aconn.data(ref, b"abc")
    await aconn.data(ref, bytearray(b"def"))
    await aconn.data(ref, "ghi", fin=True)
    resp = await aconn.response(ref)
    assert resp.status == 200 and await resp.read() == b"abcdefghi"


async def test_concurrent_data_keeps_call_order(aconn: gunmetal.aio.Connection) -> None:
    ref = await aconn.headers("POST", "/echo")
    await asyncio.gather(*(aconn.data(ref, bytes([65 + i]) * 1000) for i in range(20)))
    await aconn.data(ref, b"", fin=True)
    body = await (await aconn.response(ref)).read()
    assert body == b"".join(bytes([65 + i]) * 1000 for i in range(20))


async def test_await_and_await_body(aconn: gunmetal.aio.Connection) -> None:
    ref = await aconn.start_request("GET", "/bytes/5")
    ev = await aconn.await_(ref, 5)
    assert ev.kind == EventKind.RESPONSE and ev.conn is aconn and ev.ref == ref
    ev = await aconn.await_(ref, 5)
    assert ev.kind == EventKind.DATA and ev.fin and ev.data == b"abcde"
    # await_body from the start, and with trailers
    ref = await aconn.start_request("GET", "/trailers", [("te", "trailers")])
    b = await aconn.await_body(ref, 5)
    assert b.status == 200 and b.body == b"hello trailers" and ("x-checksum", "abc123") in b.trailers
    ref = await aconn.start_request("GET", "/bytes/3")
    b = await aconn.await_body(ref, 5)
    assert (b.status, b.body, b.trailers) == (200, b"abc", [])
    ref = await aconn.start_request("GET", "/delay/1000")
    with pytest.raises(gunmetal.Timeout):
        await aconn.await_(ref, 0.05)
    aconn.cancel(ref)


async def test_response_after_head_taken(aconn: gunmetal.aio.Connection) -> None:
    ref = await aconn.start_request("GET", "/bytes/4")
    assert (await aconn.await_(ref, 5)).kind == EventKind.RESPONSE
    resp = await aconn.response(ref)
    assert resp.status == 0 and await resp.read() == b"abcd"


async def test_request_timeout(aconn: gunmetal.aio.Connection) -> None:
    with pytest.raises(gunmetal.StreamTimeout):
        await aconn.get("/delay/3000", timeout=0.1)


async def test_stream_error_drop(server: Server) -> None:
    async with gunmetal.aio.open(server.host, server.http, retry=1) as c:
        resp = await c.get("/drop?after=50")
        with pytest.raises(gunmetal.StreamClosed):
            async for _ in resp:
                pass


async def test_cancel_task_cancels_stream_during_body(aconn: gunmetal.aio.Connection) -> None:
    resp = await aconn.get("/slow?chunks=20&delay=20&size=10")
    task = asyncio.ensure_future(resp.read())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    info = aconn.stream_info(resp.ref)
    assert info is None or info["state"] == "stopping"
    assert resp.ref not in aconn._streams
    # the connection goes on (HTTP/1.1 reads the cancelled response and drops it)
    assert await (await aconn.get("/bytes/2")).read() == b"ab"


async def test_cancel_task_cancels_stream_before_head(aconn: gunmetal.aio.Connection) -> None:
    task = asyncio.ensure_future(aconn.get("/delay/300"))
    await asyncio.sleep(0.05)
    (ref,) = list(aconn._streams)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ref not in aconn._streams
    info = aconn.stream_info(ref)
    assert info is None or info["state"] == "stopping"
    assert await (await aconn.get("/bytes/1")).read() == b"a"


async def test_wait_for_timeout_cancels_stream(aconn: gunmetal.aio.Connection) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(aconn.get("/delay/2000"), 0.05)
    assert not aconn._streams


async def test_response_cancel_and_context(aconn: gunmetal.aio.Connection) -> None:
    async with await aconn.get("/slow?chunks=5&delay=20&size=10") as resp:
        assert resp.status == 200
    assert resp.done and resp.ref not in aconn._streams


async def test_flow_window_backpressure(server: Server) -> None:
    async with gunmetal.aio.open(server.host, server.http, window=2) as c:
        await c.up(5)
        resp = await c.get("/slow?chunks=10&delay=5&size=1000")
        await asyncio.sleep(0.3)  # the server has sent it all; we read nothing
        st = c._streams[resp.ref]
        assert len(st.events) <= 2  # the window: no more DATA was read
        info = c.stream_info(resp.ref)
        assert info is not None and info["flow"] == "0"
        assert len(await resp.read()) == 10000


async def test_update_flow_and_stream_info(server: Server) -> None:
    async with gunmetal.aio.open(server.host, server.http, window=0) as c:
        await c.up(5)
        ref = await c.start_request("GET", "/delay/100")
        info = c.stream_info(ref)
        assert info is not None and info["method"] == "GET" and info["flow"] == "-1"
        c.update_flow(ref, 1)  # no flow control on this stream: accepted, no effect
        await (await c.response(ref)).read()
        assert c.stream_info(ref) is None
        assert c.info()["state"] == "connected"


async def test_shutdown_wait_closed(aconn: gunmetal.aio.Connection) -> None:
    resp = await aconn.get("/slow?chunks=3&delay=30&size=5")
    aconn.shutdown()
    with pytest.raises(gunmetal.StreamClosed):
        await aconn.get("/bytes/1")
    assert await resp.read() == b"abcdefghijklmno"
    assert await aconn.wait_closed() == "shutdown"
    assert aconn.state == "exited"


async def test_set_owner_to_sync_queue(aconn: gunmetal.aio.Connection) -> None:
    with gunmetal.Queue() as q:
        aconn.set_owner(q)
        ref = await aconn.start_request("GET", "/bytes/3")
        evs: List[gunmetal.Event] = []
        while not (evs and evs[-1].fin):
            evs += q.poll(10, 0)
            await asyncio.sleep(0.01)
        assert evs[-1].data == b"abc" and evs[-1].conn is aconn and evs[-1].ref == ref


async def test_close_idempotent_and_del(server: Server) -> None:
    c = gunmetal.aio.open(server.host, server.http)
    await c.up(5)
    waiting = asyncio.ensure_future(c.get("/delay/2000"))
    await asyncio.sleep(0.05)
    c.close()
    c.close()
    await c.aclose()
    with pytest.raises(gunmetal.Closed):
        await waiting
    with pytest.raises(gunmetal.Closed):
        await c.up()
    assert await c.wait_closed() == "shutdown"
    before = gunmetal.live_handles()
    d = gunmetal.aio.open(server.host, server.http)
    await d.up(5)
    import gc

    with pytest.warns(ResourceWarning, match="unclosed <gunmetal.aio.Connection"):  # and still closed:
        del d
        gc.collect()
    assert gunmetal.live_handles() == before


async def test_many_concurrent_requests(aconn: gunmetal.aio.Connection) -> None:
    resps = await asyncio.gather(*(aconn.get(f"/bytes/{i}") for i in range(1, 101)))
    bodies = await asyncio.gather(*(r.read() for r in resps))
    assert [len(b) for b in bodies] == list(range(1, 101))


async def test_http2_when_available(server: Server) -> None:
    async with gunmetal.aio.open(server.host, server.http, protocols=["http2"]) as c:
        assert await c.up(5) == "http2"
        resps = await asyncio.gather(*(c.get(f"/bytes/{i}") for i in range(1, 101)))
        bodies = await asyncio.gather(*(r.read() for r in resps))
        assert [len(b) for b in bodies] == list(range(1, 101))


async def test_loop_never_blocked(server: Server) -> None:
    """A ticker keeps ticking while 16 MiB go up (data() in the sender
    thread) and 32 MiB come down (drained in batches)."""
    gaps: List[float] = []
    stop = False

    async def ticker() -> None:
        last = time.monotonic()
        while not stop:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    t = asyncio.ensure_future(ticker())
    async with gunmetal.aio.open(server.host, server.http) as c:
        await c.up(5)  # (data() before UP would be held until UP: test_held.py)
        ref = await c.headers("POST", "/headers", [("content-length", str(16 << 20))])
        chunk = b"x" * (1 << 20)
        for _ in range(16):
            await c.data(ref, chunk)
        await c.data(ref, b"", fin=True)
        r = json.loads(await (await c.response(ref)).read())
        assert r["body_len"] == 16 << 20
        n = 0
        async for piece in await c.get(f"/bytes/{32 << 20}"):
            n += len(piece)
        assert n == 32 << 20
    stop = True
    await t
    assert gaps and max(gaps) < 0.5, max(gaps)


async def test_drain_errors_are_not_swallowed(server: Server) -> None:
    loop = asyncio.get_running_loop()
    seen: List[Dict[str, Any]] = []
    loop.set_exception_handler(lambda _l, ctx: seen.append(ctx))
    try:
        async with gunmetal.aio.open(server.host, server.http) as c:
            await c.up(5)

            def broken(*a: Any) -> List[gunmetal.Event]:
                raise RuntimeError("boom")

            c._q.poll = broken  # type: ignore[method-assign]
            with pytest.raises(RuntimeError, match="boom"):
                await c.get("/bytes/1")
            assert seen and isinstance(seen[0]["exception"], RuntimeError)
    finally:
        loop.set_exception_handler(None)


async def test_connection_error_event_ends_stream_waits(aconn: gunmetal.aio.Connection) -> None:
    # A connection-wide ERROR (ref 0) reaches every stream, as Gun's await does.
    from gunmetal._events import Event

    resp_task = asyncio.ensure_future(aconn.get("/delay/300"))
    await asyncio.sleep(0.05)
    ev = Event(EventKind.ERROR, aconn, 0, False, 0, [], b"", "protocol_error: test", None, None, None, 0, [], 0)
    aconn._conn_event(ev)
    with pytest.raises(gunmetal.ProtocolError):
        await resp_task
    assert (await aconn.next_event(1)).kind == EventKind.UP
    assert (await aconn.next_event(1)).reason == "protocol_error: test"
    with pytest.raises(gunmetal.Timeout):
        await aconn.next_event(0.05)


def test_close_after_the_loop_is_gone(server: Server) -> None:
    async def make() -> gunmetal.aio.Connection:
        c = gunmetal.aio.open(server.host, server.http)
        await c.up(5)
        return c

    loop = asyncio.new_event_loop()
    try:
        c = loop.run_until_complete(make())
    finally:
        loop.close()
    c.close()  # no loop to tell: still releases the handle
    assert c.closed
