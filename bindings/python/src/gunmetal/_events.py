"""Typed events (Gun's messages) and their decoding from C memory.

An event is copied into Python objects as soon as it is taken and the C event
is freed right away: Python code never sees library memory.
"""

from __future__ import annotations

import enum
import struct
from ctypes import string_at
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, List, NamedTuple, Optional, Tuple, Union, cast

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
    INFO = _ffi.GM_EV_INFO


class WSOpcode(enum.IntEnum):
    """GM_WS_*: WebSocket frame kinds."""

    TEXT = _ffi.GM_WS_TEXT
    BINARY = _ffi.GM_WS_BINARY
    CLOSE = _ffi.GM_WS_CLOSE
    PING = _ffi.GM_WS_PING
    PONG = _ffi.GM_WS_PONG


@dataclass(eq=True)
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
    """

    __slots__ = (
        "kind",
        "conn",
        "ref",
        "fin",
        "status",
        "headers",
        "data",
        "reason",
        "protocol",
        "method",
        "uri",
        "new_ref",
        "killed",
        "ws_opcode",
    )
    kind: EventKind
    conn: Optional["BaseConnection"]
    ref: int
    fin: bool
    status: int
    headers: List[Header]
    data: bytes
    reason: Optional[str]
    protocol: Optional[str]
    method: Optional[str]
    uri: Optional[str]
    new_ref: int
    killed: List[int]
    ws_opcode: int


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


WSMessage = Union[WSFrame, str, bytes]

# ------------------------------------------------------------------ decoding

_KINDS = {int(k): k for k in EventKind}
_unpack_event = struct.Struct(_ffi.EVENT_FORMAT).unpack
_iter_headers = struct.Struct(_ffi.HEADER_FORMAT).iter_unpack
_EV_SIZE = _ffi.EVENT_SIZE
_HDR_SIZE = _ffi.HEADER_SIZE


def decode_headers(p: int, n: int) -> List[Header]:
    # Two copies, whatever n: the gm_header array, then the span of memory
    # its strings occupy (they all live in the event's one allocation).
    hs = list(_iter_headers(string_at(p, n * _HDR_SIZE)))
    lo = hi = hs[0][0]
    for np_, vp, nl, vl in hs:
        if np_ < lo:
            lo = np_
        if vp < lo:
            lo = vp
        e = np_ + nl
        if e > hi:
            hi = e
        e = vp + vl
        if e > hi:
            hi = e
    blob = string_at(lo, hi - lo) if hi > lo else b""
    if blob.isascii():  # the usual case: one decode, then str slices
        t = blob.decode("ascii")
        return [(t[np_ - lo : np_ - lo + nl], t[vp - lo : vp - lo + vl]) for np_, vp, nl, vl in hs]
    return [
        (
            blob[np_ - lo : np_ - lo + nl].decode("utf-8", "surrogateescape"),
            blob[vp - lo : vp - lo + vl].decode("utf-8", "surrogateescape"),
        )
        for np_, vp, nl, vl in hs
    ]


def decode(addr: int, lookup: Callable[[int], Any]) -> Event:
    """Copies the gm_event at `addr` into an Event (does not free it)."""
    (
        _size,
        kind,
        fin,
        ws_opcode,
        status,
        conn,
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
    ) = _unpack_event(string_at(addr, _EV_SIZE))
    return Event(
        cast(EventKind, _KINDS.get(kind, kind)),
        lookup(conn) if conn else None,
        ref,
        fin != 0,
        status,
        decode_headers(headers, n_headers) if n_headers else [],
        string_at(data, data_len) if data_len else b"",
        string_at(reason).decode("utf-8", "surrogateescape") if reason else None,
        string_at(protocol).decode("utf-8", "surrogateescape") if protocol else None,
        string_at(method).decode("utf-8", "surrogateescape") if method else None,
        string_at(uri).decode("utf-8", "surrogateescape") if uri else None,
        new_ref,
        list(struct.unpack(f"{n_killed}Q", string_at(killed, 8 * n_killed))) if n_killed else [],
        ws_opcode,
    )
