"""Typed events (Gun's messages) and their decoding from C memory.

An event is copied into Python objects as soon as it is taken and the C event
is freed right away: Python code never sees library memory.
"""

from __future__ import annotations

import ctypes
import enum
import struct
import sys
from ctypes import string_at
from operator import add as _add
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, List, NamedTuple, Optional, Tuple, Union, cast

from . import _ffi

if TYPE_CHECKING:
    from ._core import BaseConnection

Header = Tuple[str, str]
"""A header as events give it: (name, value), decoded as UTF-8 with
surrogateescape (lossless: ``.encode("utf-8", "surrogateescape")`` gives the
bytes back). Response header names are lower case, as in Gun."""


class EventKind(enum.IntEnum):
    """GM_EV_*: which of Gun's messages an event is."""

    UP = _ffi.GM_EV_UP
    DOWN = _ffi.GM_EV_DOWN
    EXIT = _ffi.GM_EV_EXIT
    INFORM = _ffi.GM_EV_INFORM
    RESPONSE = _ffi.GM_EV_RESPONSE
    DATA = _ffi.GM_EV_DATA
    TRAILERS = _ffi.GM_EV_TRAILERS
    PUSH = _ffi.GM_EV_PUSH
    ERROR = _ffi.GM_EV_ERROR
    UPGRADE = _ffi.GM_EV_UPGRADE
    WS = _ffi.GM_EV_WS
    NOTIFY = _ffi.GM_EV_NOTIFY
    TUNNEL_UP = _ffi.GM_EV_TUNNEL_UP
    TRACE = _ffi.GM_EV_TRACE
    SSE = _ffi.GM_EV_SSE
    INFO = _ffi.GM_EV_INFO


class WSOpcode(enum.IntEnum):
    """GM_WS_*: WebSocket frame kinds."""

    TEXT = _ffi.GM_WS_TEXT
    BINARY = _ffi.GM_WS_BINARY
    CLOSE = _ffi.GM_WS_CLOSE
    PING = _ffi.GM_WS_PING
    PONG = _ffi.GM_WS_PONG


@dataclass(eq=True, init=False)
class Event:
    """One of Gun's messages. Fields that do not apply to a kind are 0/None/empty.

    - ``kind``: the :class:`EventKind`
    - ``conn``: the :class:`~gunmetal.Connection` (sync or asyncio) it is about,
      or None when that Python object no longer exists
    - ``ref``: the stream (0 for connection events); ``new_ref``: PUSH's new stream
    - ``fin``: Gun's IsFin
    - ``status``: INFORM/RESPONSE status, or a WebSocket close code
    - ``headers``: list of (name, value) str pairs (trailers for TRAILERS)
    - ``data``: DATA / WebSocket payload as bytes
    - ``reason``: ERROR/DOWN/EXIT/NOTIFY reason ("closed", "econnrefused", ...)
    - ``protocol``: UP/DOWN/TUNNEL_UP protocol ("http", "http2", ...)
    - ``method``/``uri``: PUSH
    - ``killed``: DOWN: the refs lost with the connection
    - ``ws_opcode``: the :class:`WSOpcode` of a WS event (0 otherwise)
    - ``ts_ns``: TRACE: when (CLOCK_MONOTONIC nanoseconds, as
      ``time.monotonic_ns()``); 0 for other kinds

    TRACE events (the ``trace`` option) are :class:`TraceEvent` objects.

    The header bytes are copied out of the library when the event is taken,
    but decoded into str pairs only when ``headers`` is first read.
    """

    __slots__ = (
        "kind",
        "conn",
        "ref",
        "fin",
        "status",
        "_headers",  # a list, None (no headers) or the copied bytes (_RawHeaders)
        "data",
        "reason",
        "protocol",
        "method",
        "uri",
        "new_ref",
        "killed",
        "ws_opcode",
        "ts_ns",
    )
    kind: EventKind
    conn: Optional["BaseConnection"]
    ref: int
    fin: bool
    status: int
    headers: List[Header]  # a property (below), decoding on first use
    data: bytes
    reason: Optional[str]
    protocol: Optional[str]
    method: Optional[str]
    uri: Optional[str]
    new_ref: int
    killed: List[int]
    ws_opcode: int
    ts_ns: int

    def __init__(
        self,
        kind: EventKind,
        conn: Optional["BaseConnection"],
        ref: int,
        fin: bool,
        status: int,
        headers: Any,
        data: bytes,
        reason: Optional[str],
        protocol: Optional[str],
        method: Optional[str],
        uri: Optional[str],
        new_ref: int,
        killed: List[int],
        ws_opcode: int,
        ts_ns: int = 0,
    ) -> None:
        self.kind = kind
        self.conn = conn
        self.ref = ref
        self.fin = fin
        self.status = status
        self._headers = headers
        self.data = data
        self.reason = reason
        self.protocol = protocol
        self.method = method
        self.uri = uri
        self.new_ref = new_ref
        self.killed = killed
        self.ws_opcode = ws_opcode
        self.ts_ns = ts_ns


def _get_headers(self: Event) -> List[Header]:
    h = self._headers
    if h.__class__ is list:
        return cast(List[Header], h)
    out = [] if h is None else _decode_raw(h)
    self._headers = out
    return out


def _set_headers(self: Event, value: List[Header]) -> None:
    self._headers = value


# After @dataclass, which sees `headers` as an ordinary field (for fields(),
# __eq__ and __repr__, which read it through the property).
setattr(Event, "headers", property(_get_headers, _set_headers, doc="(name, value) str pairs"))


class TraceEvent(Event):
    """A TRACE event: one of Gun's gun_event callbacks (the ``trace``
    option: True, or a list of names), in Gun's order, e.g.::

        for ev in conn.queue.poll():
            if isinstance(ev, gunmetal.TraceEvent):
                print(ev.ts_ns, ev.name, ev.ref, ev.details, ev.fields)

    - ``name``: the callback ("request_start", "response_end",
      "tls_handshake_end", ...), also in ``reason``
    - ``ref``: the stream (0 for connection events: init, domain_lookup_*,
      connect_*, tls_handshake_*, disconnect, terminate)
    - ``ts_ns``: CLOCK_MONOTONIC nanoseconds (``time.monotonic_ns()``'s clock)
    - ``status``: response_inform / response_headers' HTTP status
    - ``data``: a WebSocket frame's payload (ws_recv_frame_end, ws_send_frame_*)
    - ``details``: the rest of Gun's event map, {key: str}, e.g.
      {"method": "GET", "path": "/"} or {"tls_version": "tlsv1.3",
      "cipher": ..., "alpn": "h2", "resumed": "false", "protocol": "http2"}
    - ``fields``: the HTTP header fields the callback carries
      (request_start/headers, response_inform/headers/trailers,
      push_promise_end), as (name, value) pairs

    ``headers`` holds both, as the C ABI gives them: the details first,
    named ":" + key, then the fields.
    """

    __slots__ = ()

    @property
    def name(self) -> str:
        return self.reason or ""

    @property
    def details(self) -> Dict[str, str]:
        return {k[1:]: v for k, v in self.headers if k.startswith(":")}

    @property
    def fields(self) -> List[Header]:
        return [(k, v) for k, v in self.headers if not k.startswith(":")]


class Body(NamedTuple):
    """What ``await_body`` returns: Gun's ``{ok, Body}`` / ``{ok, Body, Trailers}``
    with the response head in front. ``status`` is 0 and ``headers`` empty when
    the RESPONSE had already been taken (with ``await_``)."""

    status: int
    headers: List[Header]
    body: bytes
    trailers: List[Header]


@dataclass(frozen=True)
class WSFrame:
    """A WebSocket frame to send or received: text, binary, ping, pong or close."""

    opcode: WSOpcode
    data: bytes = b""
    code: int = 0  # close code (CLOSE only)

    @classmethod
    def text(cls, s: str) -> "WSFrame":
        return cls(WSOpcode.TEXT, s.encode("utf-8"))

    @classmethod
    def binary(cls, b: bytes) -> "WSFrame":
        return cls(WSOpcode.BINARY, bytes(b))

    @classmethod
    def ping(cls, b: bytes = b"") -> "WSFrame":
        return cls(WSOpcode.PING, bytes(b))

    @classmethod
    def pong(cls, b: bytes = b"") -> "WSFrame":
        return cls(WSOpcode.PONG, bytes(b))

    @classmethod
    def close(cls, code: int = 1000, reason: str = "") -> "WSFrame":
        return cls(WSOpcode.CLOSE, reason.encode("utf-8"), code)

    def as_text(self) -> str:
        return self.data.decode("utf-8")

    @property
    def reason(self) -> str:
        """A close frame's reason as str ("" for other frames)."""
        return self.data.decode("utf-8", "replace") if self.opcode == WSOpcode.CLOSE else ""


WSMessage = Union[WSFrame, str, bytes]

Received = Union[str, bytes, WSFrame]
"""What ``WebSocket.recv()`` gives: str for a text frame, bytes for a
binary one, a :class:`WSFrame` for a ping, a pong or the close frame."""


def ws_received(ev: "Event") -> Received:
    """The message of a WS event: str (text), bytes (binary) or a WSFrame."""
    op = ev.ws_opcode
    if op == WSOpcode.TEXT:
        return ev.data.decode("utf-8", "surrogateescape")
    if op == WSOpcode.BINARY:
        return ev.data
    return WSFrame(WSOpcode(op), ev.data, ev.status)


@dataclass(frozen=True)
class SSEEvent:
    """A server-sent event (Gun's gun_sse map, from an SSE event's headers
    and data; see GM_EV_SSE in gunmetal.h):

    - ``event_type``: the event field ("message" by default); None for an
      event that only carries an id (Gun's lone last_event_id) or a retry
    - ``data``: the data lines joined with "\\n" (None when event_type is)
    - ``last_event_id``: the last id seen on the stream ("" when none); None
      for a retry-only event
    - ``retry``: the reconnection time in ms when the event set one
    """

    event_type: Optional[str]
    data: Optional[str]
    last_event_id: Optional[str]
    retry: Optional[int] = None

    @classmethod
    def from_event(cls, ev: "Event") -> Optional["SSEEvent"]:
        """The SSEEvent of a GM_EV_SSE event; None for its fin (the end)."""
        if ev.kind != EventKind.SSE:
            raise ValueError(f"not an SSE event: {ev.kind!r}")
        if ev.fin and not ev.headers:
            return None
        h = dict(ev.headers)
        et = h.get("event_type")
        r = h.get("retry")
        return cls(et, ev.data.decode("utf-8", "replace") if et is not None else None,
                   h.get("last_event_id"), int(r) if r is not None else None)


def is_event_stream(headers: List[Header]) -> bool:
    """Whether a response's content-type is text/event-stream (what gun_sse_h
    takes)."""
    for k, v in headers:
        if k == "content-type":
            return v.split(";", 1)[0].strip().lower() == "text/event-stream"
    return False

# ------------------------------------------------------------------ decoding
#
# Events are read with struct.unpack_from and memoryview slices over one
# view of the address space (_MEM): no ctypes call per field, which is what
# an event costs most otherwise (ctypes.string_at is a foreign call). Where
# that view cannot be made (not CPython), string_at does the same reads.

_KINDS: Dict[int, EventKind] = {int(k): k for k in EventKind}
_DATA = EventKind.DATA
_RESPONSE = EventKind.RESPONSE
_EV = struct.Struct(_ffi.EVENT_FORMAT)
_unpack_event = _EV.unpack
_unpack_event_from = _EV.unpack_from
_EV_SIZE = _ffi.EVENT_SIZE
_HDR_SIZE = _ffi.HEADER_SIZE
_PTR_SIZE = struct.calcsize("P")


def _address_space() -> Optional[memoryview]:
    """A read-only byte view of the whole address space, or None. (64-bit
    only: there every user-space address is below sys.maxsize, so a slice
    never comes out short.)"""
    if sys.maxsize < 2**62:
        return None
    try:
        mv = memoryview((ctypes.c_char * sys.maxsize).from_address(0)).cast("B").toreadonly()
        probe = ctypes.create_string_buffer(b"gunmetal\x00\xff", 10)
        a = ctypes.addressof(probe)
        if mv[a : a + 10].tobytes() != b"gunmetal\x00\xff":
            return None
        return mv
    except Exception:  # pragma: no cover - not CPython, or a ctypes without it
        return None


_MEM = _address_space()


def _bytes_at(p: int, n: int) -> bytes:
    if _MEM is not None:
        return _MEM[p : p + n].tobytes()
    return string_at(p, n)


def _str_at(p: int) -> str:
    # NUL-terminated: reason, protocol, method, uri (short, and not on the
    # hot path of DATA and RESPONSE events).
    return string_at(p).decode("utf-8", "surrogateescape")


# Headers copied out of an event but not decoded yet: (blob, lo, ptrs, lens),
# `blob` the memory from address `lo` on that holds every string, `ptrs` and
# `lens` the strings' addresses and lengths: name, value, name, value, ...
_RawHeaders = Tuple[bytes, int, Tuple[int, ...], Tuple[int, ...]]

# gm_header is (name, value, name_len, value_len): two unpackers per count,
# one for the pointers and one for the lengths, in the same order.
assert _ffi.HEADER_FORMAT.lstrip("@") == "PPNN" and _HDR_SIZE == 4 * _PTR_SIZE
_PTRS_FMT = "PP%dx" % (2 * _PTR_SIZE)
_LENS_FMT = "%dxNN" % (2 * _PTR_SIZE)
_hdr_structs: Dict[int, Tuple[Any, Any]] = {}


def _hdr_unpackers(n: int) -> Tuple[Any, Any]:
    u = (struct.Struct("@" + _PTRS_FMT * n), struct.Struct("@" + _LENS_FMT * n))
    if len(_hdr_structs) < 256:
        _hdr_structs[n] = u
    return u


def copy_headers(p: int, n: int) -> _RawHeaders:
    """Copies the gm_header array at `p` (n > 0) and its strings: two copies,
    whatever n (the array, then the span of memory its strings occupy: the
    library packs them in the event's one allocation). Strings that are not
    packed together are copied one by one."""
    up, ul = _hdr_structs.get(n) or _hdr_unpackers(n)
    if _MEM is not None:
        ptrs = up.unpack_from(_MEM, p)
        lens = ul.unpack_from(_MEM, p)
    else:
        raw = string_at(p, n * _HDR_SIZE)
        ptrs = up.unpack(raw)
        lens = ul.unpack(raw)
    lo = min(ptrs)
    hi = max(map(_add, ptrs, lens))
    # Packed: the gaps between the strings add up to less than a page, so
    # the span holds no unmapped memory. (Else a NULL pointer, or strings
    # from all over the heap, as tests make them.)
    if lo and hi - lo <= sum(lens) + 2 * n + 64:
        return (_bytes_at(lo, hi - lo), lo, ptrs, lens)
    # Each string on its own, into one blob whose offsets stand for the
    # addresses (lo = 0).
    blob = b"".join([_bytes_at(q, ln) if ln else b"" for q, ln in zip(ptrs, lens)])
    offs = [0]
    for ln in lens[:-1]:
        offs.append(offs[-1] + ln)
    return (blob, 0, tuple(offs), lens)


# The library's layout (capi/event.go): the gm_header array, then the
# strings right after it, each name and value followed by a NUL. For such an
# event one read of three words (the first name's address, the last value's
# address and length) bounds the strings, and one copy from the array to
# their end takes everything; the array is parsed when headers are first
# read. Headers laid out otherwise take copy_headers.
_PackedHeaders = Tuple[bytes, int, int]  # (array and strings, array address, count)
_hdr_ends: Dict[int, Any] = {}
_SPAN_MAX = 1 << 20  # past this, copy_headers (which looks at every string)


def _hdr_ends_struct(n: int) -> Any:
    # name[0], then value[n-1] and value_len[n-1] (the last entry's 2nd and 4th words)
    u = struct.Struct("@P%dxP%dxN" % ((n - 1) * _HDR_SIZE, _PTR_SIZE))
    if len(_hdr_ends) < 256:
        _hdr_ends[n] = u
    return u


def copy_headers_packed(p: int, n: int) -> Union[_RawHeaders, _PackedHeaders]:
    """copy_headers for the library's layout (see above) in one copy, else
    copy_headers. Needs _MEM."""
    mem = cast(memoryview, _MEM)
    lo, vp, vl = (_hdr_ends.get(n) or _hdr_ends_struct(n)).unpack_from(mem, p)
    hi = vp + vl
    if lo == p + n * _HDR_SIZE and lo <= hi <= lo + _SPAN_MAX:
        return (mem[p:hi].tobytes(), p, n)
    return copy_headers(p, n)


def _unpack_packed(raw: _PackedHeaders) -> _RawHeaders:
    blob, p, n = raw
    up, ul = _hdr_structs.get(n) or _hdr_unpackers(n)
    start = n * _HDR_SIZE
    return (blob[start:], p + start, up.unpack_from(blob), ul.unpack_from(blob))


def _decode_raw(raw: Union[_RawHeaders, _PackedHeaders]) -> List[Header]:
    if len(raw) == 3:
        raw = _unpack_packed(raw)
    blob, lo, ptrs, lens = raw
    it = iter(zip(ptrs, lens))
    if blob.isascii():  # the usual case: one decode, then str slices
        t = blob.decode("ascii")
        return [(t[a - lo : a - lo + nl], t[b - lo : b - lo + vl]) for (a, nl), (b, vl) in zip(it, it)]
    return [
        (
            blob[a - lo : a - lo + nl].decode("utf-8", "surrogateescape"),
            blob[b - lo : b - lo + vl].decode("utf-8", "surrogateescape"),
        )
        for (a, nl), (b, vl) in zip(it, it)
    ]


def decode_headers(p: int, n: int) -> List[Header]:
    """The gm_header array at `p` (n > 0) as (name, value) str pairs."""
    return _decode_raw(copy_headers(p, n))


def _fields(addr: int) -> Tuple[Any, ...]:
    if _MEM is not None:
        return _unpack_event_from(_MEM, addr)
    return _unpack_event(string_at(addr, _EV_SIZE))


def _full(f: Tuple[Any, ...], conn: Any) -> Event:
    """Every field of an unpacked gm_event (the general case)."""
    (
        _size,
        kind,
        fin,
        ws_opcode,
        status,
        _conn,
        ref,
        new_ref,
        protocol,
        reason,
        method,
        uri,
        headers,
        n_headers,
        data,
        data_len,
        killed,
        n_killed,
        ts_ns,
    ) = f
    return (TraceEvent if kind == 14 else Event)(
        cast(EventKind, _KINDS.get(kind, kind)),
        conn,
        ref,
        fin != 0,
        status,
        copy_headers(headers, n_headers) if n_headers else None,
        _bytes_at(data, data_len) if data_len else b"",
        _str_at(reason) if reason else None,
        _str_at(protocol) if protocol else None,
        _str_at(method) if method else None,
        _str_at(uri) if uri else None,
        new_ref,
        list(struct.unpack(f"{n_killed}Q", _bytes_at(killed, 8 * n_killed))) if n_killed else [],
        _WSOPS.get(ws_opcode, ws_opcode) if ws_opcode else 0,
        ts_ns,
    )


# A WS event's ws_opcode is a WSOpcode, as in WSFrame (one opcode type).
_WSOPS: Dict[int, WSOpcode] = {int(o): o for o in WSOpcode}


def decode(addr: int, lookup: Callable[[int], Any]) -> Event:
    """Copies the gm_event at `addr` into an Event (does not free it)."""
    f = _fields(addr)
    return _full(f, lookup(f[5]) if f[5] else None)


def decode_many(ptrs: Any, n: int, lookup: Callable[[int], Any]) -> List[Event]:
    """Copies the n gm_events whose addresses are in the C array `ptrs`
    (gm_event *[n]) into Events (does not free them)."""
    if _MEM is None:
        return [decode(ptrs[i], lookup) for i in range(n)]
    mem = _MEM
    unpack_from = _unpack_event_from
    packed = copy_headers_packed
    new = object.__new__
    out: List[Event] = []
    append = out.append
    last_conn = 0
    last_obj: Any = None
    # The pointers: one unpack of the array instead of n ctypes item reads.
    for addr in struct.unpack_from(f"{n}P", ptrs):
        (_, kind, fin, wsop, status, c, ref, new_ref, protocol, reason, method, uri, hp, nh, d, dl, _,
         n_killed, _) = unpack_from(mem, addr)
        if c != last_conn:
            last_conn = c
            last_obj = lookup(c) if c else None
        # The events of a busy connection: a DATA with only a payload, and a
        # RESPONSE with only headers. Everything else takes the general path.
        if not (protocol or reason or method or uri or n_killed):
            # What Event.__init__ does, without its call: every slot set.
            if kind == 6 and not nh:
                ev = new(Event)
                ev.kind = _DATA
                ev._headers = None
                ev.data = mem[d : d + dl].tobytes() if dl else b""
            elif kind == 5 and not dl:
                ev = new(Event)
                ev.kind = _RESPONSE
                ev._headers = packed(hp, nh) if nh else None
                ev.data = b""
            else:
                append(_full(unpack_from(mem, addr), last_obj))
                continue
            ev.conn = last_obj
            ev.ref = ref
            ev.fin = fin != 0
            ev.status = status
            ev.reason = ev.protocol = ev.method = ev.uri = None
            ev.new_ref = new_ref
            ev.killed = []
            ev.ws_opcode = wsop
            ev.ts_ns = 0
            append(ev)
            continue
        append(_full(unpack_from(mem, addr), last_obj))
    return out
