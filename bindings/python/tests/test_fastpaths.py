"""The hot paths W1 measures (bench_w1.py), checked against the general ones:
batch decoding (decode_many) against decode, event reads without ctypes
calls against the string_at fallback, headers copied at once and decoded on
first use, asyncio requests handed to the library in bursts, and bench_w1.py's
--json output."""

from __future__ import annotations

import asyncio
import copy
import ctypes
import dataclasses
import json
import os
import pickle
import subprocess
import sys
from typing import Any, Dict, List, Optional, Tuple

import pytest

import gunmetal
import gunmetal.aio
from gunmetal import EventKind, _core, _events, _ffi
from gunmetal._events import copy_headers, decode, decode_headers, decode_many
from conftest import PKG_ROOT, Server


# ------------------------------------------------------------------ hand-made events


class Made:
    """gm_events built in Python memory (kept alive with their strings)."""

    def __init__(self) -> None:
        self.keep: List[Any] = []
        self.events: List[Any] = []

    def cstr(self, b: bytes) -> int:
        buf = ctypes.create_string_buffer(b, len(b) + 1)
        self.keep.append(buf)
        return ctypes.addressof(buf)

    def packed_headers(self, pairs: List[Tuple[bytes, bytes]]) -> Tuple[Any, int]:
        """As the library lays them out: name NUL value NUL ... in one block."""
        blob = b"".join(n + b"\0" + v + b"\0" for n, v in pairs)
        base = self.cstr(blob)
        arr = (_ffi.gm_header * len(pairs))()
        off = 0
        for i, (n, v) in enumerate(pairs):
            arr[i].name = base + off
            arr[i].name_len = len(n)
            off += len(n) + 1
            arr[i].value = base + off
            arr[i].value_len = len(v)
            off += len(v) + 1
        self.keep.append(arr)
        return arr, len(pairs)

    def event(self, kind: int, conn: int = 0, ref: int = 0, fin: int = 0, status: int = 0,
              headers: Optional[List[Tuple[bytes, bytes]]] = None, data: bytes = b"",
              reason: Optional[bytes] = None, protocol: Optional[bytes] = None,
              killed: Optional[List[int]] = None, new_ref: int = 0, ws_opcode: int = 0) -> int:
        ev = _ffi.gm_event()
        ev.size = ctypes.sizeof(ev)
        ev.kind, ev.fin, ev.status, ev.ref, ev.new_ref, ev.ws_opcode = kind, fin, status, ref, new_ref, ws_opcode
        ev.conn = conn or None
        if headers:
            arr, n = self.packed_headers(headers)
            ev.headers, ev.n_headers = arr, n
        if data:
            ev.data = ctypes.cast(self.cstr(data), ctypes.POINTER(ctypes.c_uint8))
            ev.data_len = len(data)
        if reason is not None:
            ev.reason = reason
        if protocol is not None:
            ev.protocol = protocol
        if killed:
            ks = (ctypes.c_uint64 * len(killed))(*killed)
            self.keep.append(ks)
            ev.killed, ev.n_killed = ks, len(killed)
        self.keep.append(ev)
        self.events.append(ev)
        return ctypes.addressof(ev)

    def pointers(self) -> Any:
        return (ctypes.c_void_p * len(self.events))(*[ctypes.addressof(e) for e in self.events])


HDRS = [(b"server", b"nghttpd nghttp2/1.52.0"), (b"content-length", b"100"), (b"x-utf8", "é✓".encode()),
        (b"x-raw", b"\xff\xfe"), (b"x-empty", b"")]


def a_batch(m: Made, c1: int, c2: int) -> None:
    m.event(_ffi.GM_EV_UP, conn=c1, protocol=b"http2")
    for r in range(1, 4):
        m.event(_ffi.GM_EV_RESPONSE, conn=c1, ref=r, status=200, headers=HDRS)
        m.event(_ffi.GM_EV_DATA, conn=c1, ref=r, fin=1, data=b"x" * (r * 10))
    m.event(_ffi.GM_EV_RESPONSE, conn=c2, ref=9, status=204, fin=1)  # no headers
    m.event(_ffi.GM_EV_DATA, conn=c2, ref=9, fin=0)  # empty data
    m.event(_ffi.GM_EV_DATA, conn=c1, ref=3, fin=1, data=b"odd", reason=b"x")  # general path
    m.event(_ffi.GM_EV_ERROR, conn=c1, ref=2, reason="closed: é".encode())
    m.event(_ffi.GM_EV_DOWN, conn=c2, reason=b"closed", protocol=b"http2", killed=[4, 5])
    m.event(_ffi.GM_EV_TRAILERS, conn=0, ref=1, headers=[(b"grpc-status", b"0")])
    m.event(_ffi.GM_EV_WS, conn=c1, ref=7, ws_opcode=_ffi.GM_WS_CLOSE, status=1000, data=b"bye")
    m.event(99, conn=c1)  # a kind from a newer library


def test_decode_many_equals_decode() -> None:
    m = Made()
    objs = {0x1000: "conn-one", 0x2000: "conn-two"}
    looked: List[int] = []

    def lookup(a: int) -> Any:
        looked.append(a)
        return objs.get(a)

    a_batch(m, 0x1000, 0x2000)
    many = decode_many(m.pointers(), len(m.events), lookup)
    one = [decode(ctypes.addressof(e), objs.get) for e in m.events]
    assert many == one
    assert [e.conn for e in many][:3] == ["conn-one"] * 3 and many[8].conn == "conn-two"
    assert len(looked) < len(m.events)  # one lookup per run of the same connection
    r = many[1]
    assert r.kind == EventKind.RESPONSE and r.status == 200 and r.headers[0] == ("server", "nghttpd nghttp2/1.52.0")
    assert r.headers[2] == ("x-utf8", "é✓") and r.headers[3][1].encode("utf-8", "surrogateescape") == b"\xff\xfe"
    assert r.headers[4] == ("x-empty", "")
    assert many[2].data == b"x" * 10 and many[2].fin and many[2].headers == []
    assert many[7].headers == [] and many[7].fin and many[8].data == b""
    assert many[9].reason == "x" and many[9].data == b"odd"
    assert many[10].reason == "closed: é"
    assert many[11].killed == [4, 5] and many[11].protocol == "http2"
    assert many[12].headers == [("grpc-status", "0")] and many[12].conn is None
    assert many[13].ws_opcode == _ffi.GM_WS_CLOSE and many[13].status == 1000 and many[13].data == b"bye"
    assert many[14].kind == 99


def test_string_at_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    m = Made()
    a_batch(m, 0x1000, 0x2000)
    fast = decode_many(m.pointers(), len(m.events), lambda a: a)
    monkeypatch.setattr(_events, "_MEM", None)  # as where the memory view cannot be made
    slow = decode_many(m.pointers(), len(m.events), lambda a: a)
    assert slow == fast


def test_headers_not_packed_or_null() -> None:
    # Strings from all over the heap (as ctypes makes them), a NULL empty
    # string: copied one by one, never as a span that might not be mapped.
    keep = [ctypes.create_string_buffer(b"name-a"), ctypes.create_string_buffer(1 << 20),
            ctypes.create_string_buffer(b"value-a")]
    arr = (_ffi.gm_header * 2)()
    arr[0].name, arr[0].name_len = ctypes.addressof(keep[0]), 6
    arr[0].value, arr[0].value_len = ctypes.addressof(keep[2]), 7
    arr[1].name, arr[1].name_len = ctypes.addressof(keep[0]), 4
    arr[1].value, arr[1].value_len = None, 0
    hs = decode_headers(ctypes.addressof(arr), 2)
    assert hs == [("name-a", "value-a"), ("name", "")]
    blob, lo, _, _ = copy_headers(ctypes.addressof(arr), 2)
    assert lo == 0 and len(blob) == 6 + 7 + 4
    del keep


def test_event_headers_lazy_and_dataclass() -> None:
    m = Made()
    m.event(_ffi.GM_EV_RESPONSE, ref=1, status=200, headers=HDRS)
    (ev,) = decode_many(m.pointers(), 1, lambda a: None)
    assert not isinstance(ev._headers, list)  # copied, not decoded yet
    pickled = pickle.loads(pickle.dumps(ev))
    assert ev.headers[1] == ("content-length", "100")
    assert isinstance(ev._headers, list) and ev.headers is ev.headers
    assert pickled == ev and copy.copy(ev) == ev
    assert "headers" in [f.name for f in dataclasses.fields(ev)]
    assert dataclasses.asdict(ev)["headers"][0] == ("server", "nghttpd nghttp2/1.52.0")
    assert "content-length" in repr(ev)
    ev.headers = [("a", "b")]
    assert ev.headers == [("a", "b")]
    e2 = gunmetal.Event(EventKind.DATA, None, 1, True, 0, [], b"x", None, None, None, None, 0, [], 0)
    assert e2.headers == [] and e2 != ev


def test_request_noconv_binding() -> None:
    # The argtypes-free twin of gm_request: same symbol, no argtypes.
    assert _ffi.gm_request_noconv.argtypes is None
    f = ctypes.cast(_ffi.gm_request_noconv, ctypes.c_void_p).value
    g = ctypes.cast(_ffi.gm_request, ctypes.c_void_p).value
    assert f == g


def test_sync_request_arguments(server: Server) -> None:
    # Every branch of _request_args, through the library.
    with gunmetal.open(server.host, server.http, retry=0) as c:
        c.await_up(5)
        for path in ("/echo", b"/echo", "/echo?q=\u00e9"):
            b = c.await_body(c.post(path, [("x-a", "1")], b"body"), 5)
            assert b.status == 200
        assert c.await_body(c.get("/bytes/3", timeout=5, flow=3), 5).body == b"abc"
        assert c.await_body(c.get("/bytes/3", flow=16), 5).body == b"abc"
        assert c.await_body(c.put("/echo", None, bytearray(b"ba")), 5).status == 200
        with pytest.raises(gunmetal.InvalidArgument):
            c.get("/a\x00b")
        with pytest.raises(gunmetal.InvalidArgument):
            c.get("/", [("x-bad", "a\r\nb")])
        with pytest.raises(TypeError):
            c.post("/echo", None, 12)  # type: ignore[arg-type]
        with pytest.raises(gunmetal.InvalidArgument):
            c.get("/", flow=0)


def library_layout(pairs: List[Tuple[bytes, bytes]], keep: List[Any]) -> Tuple[int, int]:
    """A gm_header array with its strings right after it, in one block, as
    the library lays an event out (capi/event.go): (array address, count)."""
    n = len(pairs)
    hs = n * ctypes.sizeof(_ffi.gm_header)
    blob = b"".join(k + b"\0" + v + b"\0" for k, v in pairs)
    block = ctypes.create_string_buffer(hs + len(blob))
    keep.append(block)
    base = ctypes.addressof(block)
    ctypes.memmove(base + hs, blob, len(blob))
    arr = (_ffi.gm_header * n).from_address(base)
    off = base + hs
    for i, (k, v) in enumerate(pairs):
        arr[i].name, arr[i].name_len = off, len(k)
        off += len(k) + 1
        arr[i].value, arr[i].value_len = off, len(v)
        off += len(v) + 1
    return base, n


@pytest.mark.parametrize("pairs", [HDRS, HDRS[:1], [(b"x-empty-last", b"")], [(b"a", b"1"), (b"", b"")]])
def test_headers_library_layout(pairs: List[Tuple[bytes, bytes]]) -> None:
    # One copy of the array and its strings; the same headers as the
    # string-by-string path, decoded on first use.
    keep: List[Any] = []
    p, n = library_layout(pairs, keep)
    raw = _events.copy_headers_packed(p, n)
    assert len(raw) == 3 and raw[1] == p and raw[2] == n  # the one-copy form
    want = decode_headers(p, n)
    assert _events._decode_raw(raw) == want
    assert [(k.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape")) for k, v in want] == pairs
    # in an event, through decode_many (the RESPONSE fast path) and decode
    ev = _ffi.gm_event()
    ev.size, ev.kind, ev.ref, ev.status = ctypes.sizeof(ev), _ffi.GM_EV_RESPONSE, 3, 200
    ev.headers, ev.n_headers = ctypes.cast(p, ctypes.POINTER(_ffi.gm_header)), n
    ptrs = (ctypes.c_void_p * 1)(ctypes.addressof(ev))
    (fast,) = decode_many(ptrs, 1, lambda a: None)
    assert not isinstance(fast._headers, list) and len(fast._headers) == 3
    slow = decode(ctypes.addressof(ev), lambda a: None)
    del keep  # the event's memory may go: everything was copied
    assert fast.headers == want and fast == slow
    assert pickle.loads(pickle.dumps(fast)) == fast


def test_headers_not_library_layout() -> None:
    # Strings elsewhere than right after the array, or a NULL last value:
    # copy_headers' checks, never one span from the array.
    m = Made()
    arr, n = m.packed_headers(HDRS)  # strings in a block of their own
    raw = _events.copy_headers_packed(ctypes.addressof(arr), n)
    assert len(raw) == 4 and _events._decode_raw(raw) == decode_headers(ctypes.addressof(arr), n)
    keep: List[Any] = []
    p, n = library_layout([(b"a", b"1"), (b"b", b"")], keep)
    ctypes.c_void_p.from_address(p + ctypes.sizeof(_ffi.gm_header) + _ffi.gm_header.value.offset).value = None
    raw = _events.copy_headers_packed(p, n)
    assert len(raw) == 4 and _events._decode_raw(raw) == [("a", "1"), ("b", "")]


def test_sync_bare_requests(server: Server) -> None:
    # get/head/delete/options without options take _bare: the same refs,
    # checks and errors as the general path.
    with gunmetal.open(server.host, server.http, retry=0) as c:
        c.await_up(5)
        refs = [c.get("/bytes/3") for _ in range(3)]  # the first checks the path, the others reuse it
        assert len(set(refs)) == 3 and all(c.await_body(r, 5).body == b"abc" for r in refs)
        assert "/bytes/3" in _core._paths
        assert c.await_body(c.get(b"/bytes/2"), 5).body == b"ab"  # bytes: the general path
        assert c.await_body(c.head("/bytes/3"), 5).status == 200
        assert c.await_body(c.delete("/echo"), 5).status == 200
        assert c.await_body(c.options("/echo"), 5).status == 200
        assert c.await_body(c.get("/echo?q=\u00e9"), 5).status == 200  # not ASCII: the general path
        for _ in range(2):  # a bad path is refused each time, never cached
            with pytest.raises(gunmetal.InvalidArgument):
                c.get("/a\x00b")
        assert "/a\x00b" not in _core._paths
        with pytest.raises(TypeError):
            c.get(12)  # type: ignore[arg-type]
    with pytest.raises(gunmetal.Closed):
        c.get("/bytes/3")  # cached path, closed connection


def test_sync_bare_paths_bounded(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_core, "_paths", {})
    monkeypatch.setattr(_core, "_PATHS_MAX", 3)
    with gunmetal.open(server.host, server.http, retry=0) as c:
        c.await_up(5)
        refs = [c.get(f"/bytes/{i}") for i in range(1, 6)]
        assert [len(c.await_body(r, 5).body) for r in refs] == [1, 2, 3, 4, 5]
        assert len(_core._paths) == 3
        monkeypatch.setattr(_core, "_paths", {})
        long_path = "/bytes/1?" + "q" * _core._PATH_CACHED_MAX
        assert c.await_body(c.get(long_path), 5).body == b"a"
        assert _core._paths == {}  # too long to keep


# ------------------------------------------------------------------ asyncio bursts


@pytest.fixture
async def aconn(server: Server) -> Any:
    async with gunmetal.aio.open(server.host, server.http, retry=0) as c:
        await c.up(5)
        yield c


async def test_requests_go_out_in_a_burst(aconn: gunmetal.aio.Connection) -> None:
    tasks = [asyncio.ensure_future(aconn.get(f"/bytes/{i}")) for i in range(1, 21)]
    await asyncio.sleep(0)  # the tasks ran up to their wait: the requests are queued
    assert len(aconn._pending) == 20 and not aconn._streams
    resps = await asyncio.gather(*tasks)
    assert [len(await r.read()) for r in resps] == list(range(1, 21))
    assert not aconn._pending and not aconn._streams


async def test_call_order_kept(aconn: gunmetal.aio.Connection) -> None:
    task = asyncio.ensure_future(aconn.get("/bytes/2"))
    await asyncio.sleep(0)
    ref = await aconn.start_request("GET", "/bytes/3")  # sends what was queued first
    assert not aconn._pending
    resp = await task
    assert resp.ref < ref and await resp.read() == b"ab"
    assert (await aconn.await_body(ref, 5)).body == b"abc"


async def test_cancelled_while_queued(aconn: gunmetal.aio.Connection) -> None:
    task = asyncio.ensure_future(aconn.get("/delay/100"))
    await asyncio.sleep(0)
    (st, _), = aconn._pending
    task.cancel()  # the burst goes out first: the stream is sent, then cancelled
    with pytest.raises(asyncio.CancelledError):
        await task
    assert st.ref and st.ref not in aconn._streams
    # A stream cancelled before the burst goes out is never sent.
    task = asyncio.ensure_future(aconn.get("/delay/100"))
    await asyncio.sleep(0)
    (st, _), = aconn._pending
    aconn._cancel_stream(st)  # what the task's cancellation does
    await asyncio.sleep(0.01)
    assert st.ref == 0 and not aconn._streams and not aconn._pending
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await (await aconn.get("/bytes/1")).read() == b"a"


async def test_closed_before_it_was_sent(server: Server) -> None:
    c = gunmetal.aio.open(server.host, server.http, retry=0)
    await c.up(5)
    task = asyncio.ensure_future(c.get("/bytes/1"))
    await asyncio.sleep(0)
    c.close()
    with pytest.raises(gunmetal.Closed):
        await task


async def test_shutdown_sends_what_was_queued(server: Server) -> None:
    async with gunmetal.aio.open(server.host, server.http, retry=0) as c:
        await c.up(5)
        task = asyncio.ensure_future(c.get("/bytes/3"))
        await asyncio.sleep(0)
        assert c._pending
        c.shutdown()  # the request was made before: it finishes
        assert await (await task).read() == b"abc"
        with pytest.raises(gunmetal.Closed):
            await c.get("/bytes/1")  # made after: "closing" (or exited already)
        assert await c.wait_closed() == "shutdown"


async def test_errors_of_a_queued_request(aconn: gunmetal.aio.Connection) -> None:
    with pytest.raises(TypeError):
        await aconn.get(12)  # type: ignore[arg-type]  # Python's checks: at once
    with pytest.raises(gunmetal.InvalidArgument) as ei:
        await aconn.get("/", [("x-bad", "a\r\nb")])  # the library's: when sent
    assert "header" in str(ei.value)
    body = memoryview(bytearray(b"abc"))  # a buffer: sent at once, not queued
    r = await aconn.post("/echo", None, body)
    assert r.status == 200 and not aconn._pending
    assert await (await aconn.get("/bytes/2")).read() == b"ab"


async def test_response_headers_lazy(aconn: gunmetal.aio.Connection) -> None:
    resp = await aconn.get("/bytes/4")
    assert resp._headers is None
    assert resp.header("content-length") == "4"
    assert resp.headers is resp.headers and await resp.read() == b"abcd"
    resp.headers = []
    assert resp.header("content-length") is None


async def test_burst_over_http2(server: Server) -> None:
    async with gunmetal.aio.open(server.host, server.http, protocols=["http2"], retry=0) as c:
        assert await c.up(5) == "http2"
        done = 0

        async def worker(i: int) -> None:
            nonlocal done
            for j in range(20):
                r = await c.get(f"/bytes/{1 + (i + j) % 50}")
                assert len(await r.read()) == 1 + (i + j) % 50
                done += 1

        await asyncio.gather(*(worker(i) for i in range(50)))
        assert done == 1000 and not c._streams and not c._pending


async def test_bare_requests_reuse_arguments(server: Server) -> None:
    # get/head/delete/options without options: the arguments of the first
    # request to a path are kept (per connection and method) and reused.
    async with gunmetal.aio.open(server.host, server.http, retry=0) as c:
        await c.up(5)
        assert [await (await c.get("/bytes/3")).read() for _ in range(3)] == [b"abc"] * 3
        args = c._bare_args[b"GET"]["/bytes/3"]
        task = asyncio.ensure_future(c.get("/bytes/3"))
        await asyncio.sleep(0)
        (st, queued), = c._pending
        assert queued is args and st.ref == 0
        assert await (await task).read() == b"abc"
        assert (await c.head("/bytes/3")).status == 200 and b"HEAD" in c._bare_args
        assert (await c.delete("/echo")).status == 200 and (await c.options("/echo")).status == 200
        for _ in range(2):  # refused each time, never kept
            with pytest.raises(gunmetal.InvalidArgument):
                await c.get("/a\x00b")
        with pytest.raises(TypeError):
            await c.get(12)  # type: ignore[arg-type]
        assert set(c._bare_args[b"GET"]) == {"/bytes/3"}
        async with gunmetal.aio.open(server.host, server.http, retry=0) as c2:
            await c2.up(5)
            assert await (await c2.get("/bytes/3")).read() == b"abc"
            assert c2._bare_args[b"GET"]["/bytes/3"][0] is not args[0]  # its own handle
    with pytest.raises(gunmetal.Closed):
        await c.get("/bytes/3")  # kept arguments, closed connection


async def test_bare_arguments_bounded(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gunmetal.aio, "_BARE_MAX", 2)
    async with gunmetal.aio.open(server.host, server.http, retry=0) as c:
        await c.up(5)
        for i in range(1, 5):
            assert len(await (await c.get(f"/bytes/{i}")).read()) == i
        assert list(c._bare_args[b"GET"]) == ["/bytes/1", "/bytes/2"]
        long_path = "/bytes/1?" + "q" * _core._PATH_CACHED_MAX
        assert await (await c.head(long_path)).read() == b""
        assert c._bare_args[b"HEAD"] == {}  # too long to keep


# ------------------------------------------------------------------ bench_w1.py


def test_bench_w1_json(server: Server) -> None:
    pytest.importorskip("httpx")
    pytest.importorskip("h2")
    env = dict(os.environ)
    r = subprocess.run([sys.executable, os.path.join(PKG_ROOT, "bench_w1.py"), "--server", "testserver",
                        "--seconds", "0.2", "--rounds", "2", "--json"],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    out: Dict[str, Any] = json.loads(r.stdout)
    names = ["gunmetal sync batch", "gunmetal asyncio", "httpx http2"]
    assert out["workload"] == "W1" and out["protocol"] == "http2" and out["failed"] == {}
    assert sorted(out["req_per_s"]) == sorted(names) and all(v > 0 for v in out["req_per_s"].values())
    assert out["ratio_to_httpx"]["httpx http2"] == 1.0
    assert all(len(out["req_per_s_rounds"][n]) == 2 for n in names)
    assert set(out["meets_target"]) == set(names[:2]) and out["target_ratio"] == 40
