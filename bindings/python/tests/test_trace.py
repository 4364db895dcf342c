"""Trace events (the ``trace`` option): Gun's gun_event callbacks as typed
TraceEvents, in Gun's order, sync and asyncio, against the test server."""

from __future__ import annotations

import time
from typing import List, Tuple

import pytest

import gunmetal
import gunmetal.aio
from gunmetal import EventKind, TraceEvent
from conftest import Server


def names_until(c: gunmetal.Connection, stop: str) -> Tuple[List[str], List[gunmetal.Event]]:
    """Takes the queue's events until a trace event named `stop` (or an event
    of that kind name); trace events by name, the others by kind."""
    out: List[str] = []
    evs: List[gunmetal.Event] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for ev in c.queue.poll(64, 1):
            evs.append(ev)
            name = ev.name if isinstance(ev, TraceEvent) else ev.kind.name
            out.append(name)
            if name == stop:
                return out, evs
    raise AssertionError(f"no {stop} within 10 s: {out}")


def test_trace_http1_request_typed_and_in_order(server: Server) -> None:
    t0 = time.monotonic_ns()
    with gunmetal.open(server.host, server.http, retry=0, trace=True) as c:
        names, evs = names_until(c, "UP")
        assert names == ["init", "domain_lookup_start", "domain_lookup_end", "connect_start", "connect_end", "UP"]
        ref = c.get("/bytes/10", [("x-a", "1")])
        names, evs2 = names_until(c, "DATA")
        assert names == ["request_start", "request_headers", "request_end", "response_start",
                         "response_headers", "RESPONSE", "response_end", "DATA"]
        traces = [e for e in evs + evs2 if isinstance(e, TraceEvent)]
        assert all(e.kind == EventKind.TRACE for e in traces)
        ts = [e.ts_ns for e in traces]
        assert ts == sorted(ts) and t0 <= ts[0] and ts[-1] <= time.monotonic_ns()
        rs = traces[5]
        assert rs.name == "request_start" and rs.ref == ref
        assert rs.details["method"] == "GET" and rs.details["path"] == "/bytes/10"
        assert rs.details["function"] == "request"
        assert ("x-a", "1") in rs.fields and not any(k.startswith(":") for k, _ in rs.fields)
        rh = [e for e in traces if e.name == "response_headers"][0]
        assert rh.status == 200 and ("content-length", "10") in rh.fields
        # Non-trace events carry no timestamp.
        assert all(e.ts_ns == 0 for e in evs + evs2 if not isinstance(e, TraceEvent))
        c.shutdown()
        names, evs = names_until(c, "EXIT")
        assert names[-2:] == ["terminate", "EXIT"]
        assert isinstance(evs[-2], TraceEvent) and evs[-2].details["reason"] == "shutdown"


def test_trace_tls_details(server: Server) -> None:
    # reuse_sessions false: a full handshake, whatever the process-wide session
    # cache holds from earlier tests.
    with gunmetal.open("localhost", server.https, transport="tls",
                       tls_opts={"cacertfile": server.ca, "reuse_sessions": False},
                       retry=0, trace=["tls_handshake_start", "tls_handshake_end"]) as c:
        names, evs = names_until(c, "UP")
        assert names == ["tls_handshake_start", "tls_handshake_end", "UP"]
        end = evs[1]
        assert isinstance(end, TraceEvent)
        d = end.details
        assert d["tls_version"] == "tlsv1.3" and d["alpn"] == "h2" and d["resumed"] == "false"
        assert d["protocol"] == "http2" and d["cipher"].startswith("TLS_")


def test_trace_ws_frames(server: Server) -> None:
    with gunmetal.open(server.host, server.http, retry=0,
                       trace=["ws_upgrade", "protocol_changed", "ws_send_frame_start", "ws_recv_frame_end"]) as c:
        c.await_up(5)
        ref = c.ws_upgrade("/ws")
        names, _ = names_until(c, "protocol_changed")
        assert names == ["ws_upgrade", "UPGRADE", "protocol_changed"]
        c.ws_send(ref, "hi")
        names, evs = names_until(c, "WS")
        assert names == ["ws_send_frame_start", "ws_recv_frame_end", "WS"]
        assert evs[0].data == b"hi" and evs[1].data == b"hi"
        assert isinstance(evs[1], TraceEvent) and evs[1].details["close_code"] == "undefined"


def test_trace_off_and_await_skip_trace(server: Server) -> None:
    with gunmetal.open(server.host, server.http, retry=0) as c:
        c.await_up(5)
        ref = c.get("/bytes/5")
        assert c.await_body(ref, 5).body == b"abcde"
        assert c.queue.poll(64, 0) == []  # nothing but what await took
    # On: await_body skips the stream's trace events, which stay queued.
    with gunmetal.open(server.host, server.http, retry=0, trace=["response_end"]) as c:
        c.await_up(5)
        ref = c.get("/bytes/5")
        assert c.await_body(ref, 5).body == b"abcde"
        evs = c.queue.poll(64, 5)
        assert [(e.kind, e.reason, e.ref) for e in evs] == [(EventKind.TRACE, "response_end", ref)]


def test_trace_option_errors(server: Server) -> None:
    with pytest.raises(gunmetal.OptionError, match="trace.*nope"):
        gunmetal.open(server.host, server.http, trace=["nope"])
    with pytest.raises(gunmetal.OptionError, match="trace.*transport_changd"):
        gunmetal.open(server.host, server.http, trace=["transport_changd"])


async def test_trace_aio_next_event(server: Server) -> None:
    async with gunmetal.aio.open(server.host, server.http, retry=0,
                                 trace=["request_start", "response_end"]) as c:
        await c.up(5)
        resp = await c.get("/bytes/3")
        assert await resp.read() == b"abc"
        got = []
        while len(got) < 2:
            ev = await c.next_event(5)
            if isinstance(ev, TraceEvent):
                got.append((ev.name, ev.ref))
        assert got == [("request_start", resp.ref), ("response_end", resp.ref)]
