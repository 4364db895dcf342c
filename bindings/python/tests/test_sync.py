"""The sync API against the project's test server: every Connection and
Queue method, bodies and headers in every accepted form."""

from __future__ import annotations

import array
import json
import select
import threading
import time
from typing import Any, Dict, List

import pytest

import gunmetal
from gunmetal import EventKind
from conftest import Server


def headers_reply(conn: gunmetal.Connection, ref: int) -> Dict[str, Any]:
    b = conn.await_body(ref, 5)
    assert b.status == 200, b
    return json.loads(b.body)  # type: ignore[no-any-return]


def test_version() -> None:
    assert gunmetal.version() == "0.1.0"
    assert gunmetal.__version__


def test_open_await_up_info(server: Server) -> None:
    with gunmetal.open(server.host, server.http) as c:
        assert c.await_up(5) == "http"
        info = c.info()
        assert info["state"] == "connected"
        assert info["protocol"] == "http"
        assert info["transport"] == "tcp"
        assert info["host"] == "127.0.0.1"
        assert info["port"] == str(server.http)
        assert info["origin"] == f"http://127.0.0.1:{server.http}"
        assert info["peer"] == f"127.0.0.1:{server.http}"
        assert info["sock_ip"] == "127.0.0.1" and int(info["sock_port"]) > 0
        assert "gunmetal.Connection 127.0.0.1" in repr(c)
    assert c.closed
    assert "closed" in repr(c)


def test_open_bytes_host_and_ipv6_literal(server: Server) -> None:
    with gunmetal.open(b"127.0.0.1", server.http) as c:
        assert c.await_up(5) == "http"


def test_open_unix(server: Server) -> None:
    with gunmetal.open_unix(server.unix) as c:
        assert c.await_up(5) == "http"
        assert c.info()["peer"] == server.unix
        b = c.await_body(c.get("/bytes/26"), 5)
        assert b.body == b"abcdefghijklmnopqrstuvwxyz"


def test_tls_with_ca(server: Server) -> None:
    with gunmetal.open("localhost", server.https, transport="tls", protocols=["http"],
                       tls_opts={"cacertfile": server.ca}, retry=0) as c:
        assert c.await_up(5) == "http"
        assert c.info()["transport"] == "tls"
        assert c.await_body(c.get("/bytes/3"), 5).body == b"abc"


def test_tls_unknown_ca_exits(server: Server) -> None:
    with gunmetal.open("localhost", server.https, transport="tls", protocols=["http"], retry=0) as c:
        with pytest.raises(gunmetal.Closed):
            c.await_up(5)
        (ev,) = c.queue.poll(10, 1)
        assert ev.kind == EventKind.EXIT and ev.conn is c
        assert ev.reason


def test_http2_when_available(server: Server) -> None:
    with gunmetal.open(server.host, server.http, protocols=["http2"]) as c:
        assert c.await_up(5) == "http2"
        refs = [c.get(f"/bytes/{i}") for i in range(1, 20)]
        for i, r in enumerate(refs, 1):
            assert len(c.await_body(r, 5).body) == i


def test_get_await_events(conn: gunmetal.Connection) -> None:
    ref = conn.get("/bytes/10", [("x-test", "1")])
    assert isinstance(ref, int) and ref > 0
    ev = conn.await_(ref, 5)
    assert ev.kind == EventKind.RESPONSE and ev.status == 200 and not ev.fin
    assert ev.conn is conn and ev.ref == ref
    assert ("content-length", "10") in ev.headers
    ev = conn.await_(ref, 5)
    assert ev.kind == EventKind.DATA and ev.fin and ev.data == b"abcdefghij"


def test_every_method(conn: gunmetal.Connection) -> None:
    assert headers_reply(conn, conn.get("/headers"))["method"] == "GET"
    assert headers_reply(conn, conn.delete("/headers"))["method"] == "DELETE"
    assert headers_reply(conn, conn.options("/headers"))["method"] == "OPTIONS"
    r = headers_reply(conn, conn.post("/headers", [], b"12345"))
    assert (r["method"], r["body_len"], r["content_length"]) == ("POST", 5, 5)
    r = headers_reply(conn, conn.put("/headers", None, "xyz"))
    assert (r["method"], r["body_len"]) == ("PUT", 3)
    r = headers_reply(conn, conn.patch("/headers", body=b""))
    assert (r["method"], r["body_len"]) == ("PATCH", 0)
    r = headers_reply(conn, conn.request("PROPFIND", "/headers?x=1", [("depth", "1")], b"<a/>"))
    assert (r["method"], r["query"], r["headers"]["depth"], r["body_len"]) == ("PROPFIND", "x=1", ["1"], 4)
    ref = conn.head("/bytes/100")
    ev = conn.await_(ref, 5)
    assert ev.kind == EventKind.RESPONSE and ev.fin and ev.status == 200
    assert conn.stream_info(ref) is None


def test_headers_in_every_form(conn: gunmetal.Connection) -> None:
    r = headers_reply(conn, conn.get("/headers", [(b"x-a", b"1"), ("x-b", b"2"), [b"x-c", "3"]]))
    assert r["headers"]["x-a"] == ["1"] and r["headers"]["x-b"] == ["2"] and r["headers"]["x-c"] == ["3"]
    r = headers_reply(conn, conn.get("/headers", {"x-d": "4", b"x-e": "é"}))
    assert r["headers"]["x-d"] == ["4"] and r["headers"]["x-e"] == ["é"]
    r = headers_reply(conn, conn.get("/headers", [("x-f", bytearray(b"6")), ("x-g", memoryview(b"7"))]))
    assert r["headers"]["x-f"] == ["6"] and r["headers"]["x-g"] == ["7"]
    r = headers_reply(conn, conn.get("/headers", []))
    assert r["host"] == f"127.0.0.1:{conn.info()['port']}"


@pytest.mark.parametrize(
    "body",
    [
        b"hello",
        bytearray(b"hello"),
        memoryview(b"xxhelloxx")[2:7],
        memoryview(bytearray(b"hello")),
        "hello",
        array.array("B", b"hello"),
        memoryview(b"hheelllloo")[::2],  # not contiguous: copied
    ],
    ids=["bytes", "bytearray", "ro-memoryview-slice", "rw-memoryview", "str", "array", "strided"],
)
def test_bodies_any_buffer(conn: gunmetal.Connection, body: Any) -> None:
    b = conn.await_body(conn.post("/echo", [], body), 5)
    assert b.body == b"hello"


def test_array_of_ints_body(conn: gunmetal.Connection) -> None:
    a = array.array("I", [1, 2, 3])
    b = conn.await_body(conn.post("/echo", [], a), 5)
    assert b.body == a.tobytes()


def test_streamed_body_headers_and_data(conn: gunmetal.Connection) -> None:
    ref = conn.headers("POST", "/echo", [("content-type", "text/plain")])
    conn.data(ref, b"abc")
    conn.data(ref, bytearray(b"def"))
    conn.data(ref, memoryview(b"ghi"))
    conn.data(ref, "", fin=False)  # ignored
    conn.data(ref, "jkl", fin=True)
    b = conn.await_body(ref, 5)
    assert b.body == b"abcdefghijkl"
    assert ("x-transfer-encoding", "chunked") in b.headers


def test_post_without_body_is_streamed_like_gun(conn: gunmetal.Connection) -> None:
    ref = conn.post("/echo", [("content-length", "4")])
    conn.data(ref, b"ab")
    conn.data(ref, b"cd", fin=True)
    assert conn.await_body(ref, 5).body == b"abcd"


def test_await_body_trailers(conn: gunmetal.Connection) -> None:
    b = conn.await_body(conn.get("/trailers", [("te", "trailers")]), 5)
    assert b.status == 200 and b.body == b"hello trailers"
    assert dict(b.trailers) == {"x-checksum": "abc123", "x-trailer-two": "2"}
    status, headers, body, trailers = b
    assert status == 200 and body == b"hello trailers"


def test_await_trailers_event(conn: gunmetal.Connection) -> None:
    ref = conn.get("/trailers", [("te", "trailers")])
    kinds: List[EventKind] = []
    while True:
        ev = conn.await_(ref, 5)
        kinds.append(ev.kind)
        if ev.kind == EventKind.TRAILERS:
            assert ("x-checksum", "abc123") in ev.headers
            break
    assert kinds[0] == EventKind.RESPONSE and EventKind.DATA in kinds


def test_await_body_after_response_taken(conn: gunmetal.Connection) -> None:
    ref = conn.get("/bytes/5")
    assert conn.await_(ref, 5).kind == EventKind.RESPONSE
    b = conn.await_body(ref, 5)
    assert (b.status, b.headers, b.body) == (0, [], b"abcde")


def test_inform(conn: gunmetal.Connection) -> None:
    ref = conn.get("/inform/2")
    for _ in range(2):
        ev = conn.await_(ref, 5)
        assert ev.kind == EventKind.INFORM and ev.status == 103
        assert ("link", "</style.css>; rel=preload") in ev.headers
    b = conn.await_body(ref, 5)
    assert (b.status, b.body) == (200, b"ok")


def test_await_body_skips_informs(conn: gunmetal.Connection) -> None:
    b = conn.await_body(conn.get("/inform/3"), 5)
    assert b.status == 200 and b.body == b"ok"


def test_chunked_body(conn: gunmetal.Connection) -> None:
    b = conn.await_body(conn.get("/chunked/100000?chunk=777"), 5)
    assert len(b.body) == 100000
    assert b.body[:26] == b"abcdefghijklmnopqrstuvwxyz"


def test_status_codes(conn: gunmetal.Connection) -> None:
    assert conn.await_body(conn.get("/status/404"), 5).status == 404
    ev = conn.await_(conn.get("/status/204"), 5)
    assert ev.status == 204 and ev.fin


def test_pipelined_requests(conn: gunmetal.Connection) -> None:
    refs = [conn.get(f"/bytes/{i}") for i in range(1, 51)]
    assert len(set(refs)) == 50
    for i, r in enumerate(refs, 1):
        assert len(conn.await_body(r, 5).body) == i


def test_await_timeout(conn: gunmetal.Connection) -> None:
    ref = conn.get("/delay/500")
    t = time.monotonic()
    with pytest.raises(gunmetal.Timeout) as ei:
        conn.await_(ref, 0.05)
    assert time.monotonic() - t < 0.4
    assert isinstance(ei.value, TimeoutError) and ei.value.code == -4
    assert conn.await_body(ref, 5).body == b"ok"


def test_request_timeout(conn: gunmetal.Connection) -> None:
    ref = conn.get("/delay/3000", timeout=0.1)
    with pytest.raises(gunmetal.StreamTimeout) as ei:
        conn.await_body(ref, 5)
    assert isinstance(ei.value, gunmetal.Timeout) and isinstance(ei.value, gunmetal.StreamError)
    assert ei.value.reason == "timeout"


def test_cancel(server: Server) -> None:
    with gunmetal.open(server.host, server.http) as c:
        c.await_up(5)
        ref = c.get("/slow?chunks=5&delay=40&size=10")
        assert c.await_(ref, 5).kind == EventKind.RESPONSE
        c.cancel(ref)
        info = c.stream_info(ref)
        assert info is None or info["state"] == "stopping"
        while True:  # what was queued before the cancel stays (as in Gun's mailbox)
            try:
                c.await_(ref, 0)
            except gunmetal.Timeout:
                break
        with pytest.raises(gunmetal.Timeout):
            c.await_(ref, 0.4)  # and nothing comes after it
        c.cancel(ref)  # a finished/unknown stream: ignored, as in Gun
        c.cancel(123456789)
        assert c.await_body(c.get("/bytes/3"), 5).body == b"abc"  # the connection goes on


def test_flow_control(conn: gunmetal.Connection) -> None:
    ref = conn.get("/slow?chunks=4&delay=30&size=100", flow=1)
    assert conn.await_(ref, 5).kind == EventKind.RESPONSE
    first = conn.await_(ref, 5)
    assert first.kind == EventKind.DATA
    got = len(first.data)
    # The flow is spent: nothing more arrives, although the server sent it all.
    with pytest.raises(gunmetal.Timeout):
        conn.await_(ref, 0.4)
    info = conn.stream_info(ref)
    assert info is not None and info["flow"] == "0"
    ev = first
    while not ev.fin:  # chunked: the last chunk is an empty DATA fin
        conn.update_flow(ref, 1)
        ev = conn.await_(ref, 5)
        assert ev.kind == EventKind.DATA
        got += len(ev.data)
    assert got == 400


def test_stream_info(conn: gunmetal.Connection) -> None:
    ref = conn.get("/delay/200", flow=3)
    info = conn.stream_info(ref)
    assert info is not None
    assert info["ref"] == str(ref)
    assert info["method"] == "GET" and info["path"] == "/delay/200"
    assert info["protocol"] == "http" and info["state"] == "running" and info["flow"] == "3"
    conn.await_body(ref, 5)
    assert conn.stream_info(ref) is None


def test_queue_shared_by_connections(server: Server) -> None:
    with gunmetal.Queue() as q:
        a = gunmetal.open(server.host, server.http, owner=q)
        b = gunmetal.open_unix(server.unix, owner=q)
        assert a.queue is q and b.queue is q
        seen: Dict[Any, str] = {}
        while len(seen) < 2:
            for ev in q.poll(256, 5):
                assert ev.kind == EventKind.UP
                seen[ev.conn] = ev.protocol or ""
        assert set(seen) == {a, b}
        ra, rb = a.get("/bytes/1"), b.get("/bytes/2")
        ended = set()
        while len(ended) < 2:
            for ev in q.poll(256, 5):
                if ev.kind == EventKind.DATA and ev.fin:
                    assert (ev.conn, ev.ref) in ((a, ra), (b, rb))
                    ended.add(ev.ref)
        a.close()
        b.close()
        # closing a connection of a shared queue: its EXIT "shutdown" arrives there
        reasons = []
        while len(reasons) < 2:
            for ev in q.poll(256, 5):
                if ev.kind == EventKind.EXIT:
                    reasons.append(ev.reason)
        assert reasons == ["shutdown", "shutdown"]


def test_queue_fileno_len_poll_max(server: Server) -> None:
    with gunmetal.Queue() as q:
        c = gunmetal.open(server.host, server.http, owner=q)
        try:
            r, _, _ = select.select([q.fileno()], [], [], 5)
            assert r == [q.fileno()]
            assert len(q) == 1
            (up,) = q.poll()
            assert up.kind == EventKind.UP
            assert len(q) == 0
            assert select.select([q], [], [], 0)[0] == []  # fileno() makes it selectable
            for i in range(3):
                c.get(f"/bytes/{i + 1}")
            deadline = time.monotonic() + 5
            while len(q) < 6 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(q) == 6  # 3 × (RESPONSE, DATA fin)
            evs = q.poll(4, 0)
            assert len(evs) == 4
            assert len(q.poll(100, 0)) == 2
            assert q.poll(10, 0) == []
            assert q.poll(1000, 0.01) == []  # max above the pooled batch size
        finally:
            c.close()


def test_queue_wake(server: Server) -> None:
    with gunmetal.Queue() as q:
        got: List[Any] = []
        t = threading.Thread(target=lambda: got.append(q.poll(10, None)))
        t.start()
        time.sleep(0.1)
        q.wake()
        t.join(5)
        assert not t.is_alive() and got == [[]]


def test_set_owner(server: Server) -> None:
    with gunmetal.open(server.host, server.http) as c, gunmetal.Queue() as q2:
        c.await_up(5)
        c.set_owner(q2)
        assert c.queue is q2
        ref = c.get("/bytes/4")
        evs: List[gunmetal.Event] = []
        while not (evs and evs[-1].fin):
            evs += q2.poll(10, 5)
        assert [e.kind for e in evs] == [EventKind.RESPONSE, EventKind.DATA]
        assert all(e.ref == ref and e.conn is c for e in evs)
        assert c.await_body(c.get("/bytes/2"), 5).body == b"ab"  # await follows the owner


def test_reply_to(server: Server) -> None:
    with gunmetal.open(server.host, server.http) as c, gunmetal.Queue() as q2:
        c.await_up(5)
        ref = c.get("/bytes/4", reply_to=q2)
        evs: List[gunmetal.Event] = []
        while not (evs and evs[-1].fin):
            evs += q2.poll(10, 5)
        assert [e.kind for e in evs] == [EventKind.RESPONSE, EventKind.DATA]
        assert evs[-1].data == b"abcd" and evs[-1].ref == ref and evs[-1].conn is c
        assert len(c.queue) == 0


def test_await_reply_to_stream_after_it_ended(server: Server) -> None:
    with gunmetal.open(server.host, server.http) as c, gunmetal.Queue() as q2:
        c.await_up(5)
        ref = c.get("/bytes/3", reply_to=q2)
        time.sleep(0.2)  # the whole response is in q2 by now
        assert c.await_body(ref, 1).body == b"abc"


def test_shutdown(server: Server) -> None:
    with gunmetal.open(server.host, server.http) as c:
        c.await_up(5)
        ref = c.get("/delay/300")
        c.shutdown()
        late = c.get("/bytes/1")
        with pytest.raises(gunmetal.StreamClosed) as ei:
            c.await_body(late, 5)
        assert ei.value.reason == "closing"
        assert c.await_body(ref, 5).body == b"ok"  # in flight: finishes
        evs = c.queue.poll(10, 5)
        assert [e.kind for e in evs] == [EventKind.EXIT] and evs[0].reason == "shutdown"
        with pytest.raises(gunmetal.Closed) as ei2:
            c.get("/")
        assert ei2.value.reason == "shutdown"  # Gun's reason, with the address
        assert ei2.value.message == f"{server.host}:{server.http}: the connection exited: shutdown"
        with pytest.raises(gunmetal.Closed):
            c.shutdown()


def test_close_is_idempotent_and_final(server: Server) -> None:
    c = gunmetal.open(server.host, server.http)
    q = c.queue
    c.close()
    c.close()
    assert c.closed and q.closed
    for call in (lambda: c.get("/"), lambda: c.await_up(1), lambda: c.info(), lambda: c.cancel(1),
                 lambda: c.data(1, b"x"), lambda: c.stream_info(1), lambda: c.update_flow(1, 1),
                 lambda: c.await_(1), lambda: c.shutdown()):
        with pytest.raises(gunmetal.Closed) as ei:
            call()
        assert "close() was called" in str(ei.value)


def test_context_managers(server: Server) -> None:
    with gunmetal.Queue() as q:
        with gunmetal.open(server.host, server.http, owner=q) as c:
            c.await_up(5)
        assert c.closed and not q.closed
    assert q.closed
    with pytest.raises(gunmetal.Closed):
        q.poll(1, 0)
    with pytest.raises(gunmetal.Closed):
        q.fileno()


def test_del_backstop(server: Server) -> None:
    before = gunmetal.live_handles()
    c = gunmetal.open(server.host, server.http)
    c.await_up(5)
    assert gunmetal.live_handles() == before + 2  # the connection and its queue
    import gc

    with pytest.warns(ResourceWarning, match="unclosed <gunmetal.Connection"):  # and still closed:
        del c
        gc.collect()
    assert gunmetal.live_handles() == before


def test_queue_free_closes_its_connections(server: Server) -> None:
    q = gunmetal.Queue()
    c = gunmetal.open(server.host, server.http, owner=q)
    c.await_up(5)
    q.close()
    with pytest.raises(gunmetal.Closed) as ei:
        c.get("/")
    assert ei.value.code == gunmetal._ffi.GM_ECLOSED
    c.close()
