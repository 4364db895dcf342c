"""Event decoding from C memory, on hand-made gm_event structs (every field,
non-ASCII and non-UTF-8 header bytes)."""

from __future__ import annotations

import ctypes
from typing import Any, List

import gunmetal
from gunmetal import EventKind, _ffi
from gunmetal._events import decode, decode_headers


def make_headers(pairs: List[Any]) -> Any:
    keep = []
    arr = (_ffi.gm_header * len(pairs))()
    for i, (n, v) in enumerate(pairs):
        nb, vb = ctypes.create_string_buffer(n, len(n)), ctypes.create_string_buffer(v, len(v))
        keep += [nb, vb]
        arr[i].name = ctypes.cast(nb, ctypes.c_char_p)
        arr[i].value = ctypes.cast(vb, ctypes.c_char_p)
        arr[i].name_len, arr[i].value_len = len(n), len(v)
    return arr, keep


def test_decode_headers_ascii_utf8_and_raw_bytes() -> None:
    pairs = [(b"content-type", b"text/plain"), (b"x-utf8", "é✓".encode()), (b"x-raw", b"\xff\xfe"),
             (b"x-empty", b"")]
    arr, keep = make_headers(pairs)
    hs = decode_headers(ctypes.addressof(arr), len(pairs))
    assert hs[0] == ("content-type", "text/plain")
    assert hs[1] == ("x-utf8", "é✓")
    assert hs[2][1].encode("utf-8", "surrogateescape") == b"\xff\xfe"  # lossless
    assert hs[3] == ("x-empty", "")
    arr2, keep2 = make_headers(pairs[:1])
    assert decode_headers(ctypes.addressof(arr2), 1) == [("content-type", "text/plain")]


def test_decode_every_field() -> None:
    arr, keep = make_headers([(b"a", b"1")])
    killed = (ctypes.c_uint64 * 3)(7, 8, 9)
    data = ctypes.create_string_buffer(b"payload\x00with nul", 16)
    ev = _ffi.gm_event()
    ev.size = ctypes.sizeof(ev)
    ev.kind, ev.fin, ev.ws_opcode, ev.status = _ffi.GM_EV_PUSH, 1, 2, 404
    ev.ref, ev.new_ref = 11, 12
    ev.protocol, ev.reason, ev.method, ev.uri = b"http2", "raisön".encode(), b"GET", b"/x?y=1"
    ev.headers, ev.n_headers = arr, 1
    ev.data = ctypes.cast(data, ctypes.POINTER(ctypes.c_uint8))
    ev.data_len = 16
    ev.killed, ev.n_killed = killed, 3
    e = decode(ctypes.addressof(ev), lambda _a: None)
    assert e.kind == EventKind.PUSH and e.fin and e.ws_opcode == 2 and e.status == 404
    assert (e.ref, e.new_ref) == (11, 12)
    assert (e.protocol, e.reason, e.method, e.uri) == ("http2", "raisön", "GET", "/x?y=1")
    assert e.headers == [("a", "1")] and e.killed == [7, 8, 9]
    assert e.data == b"payload\x00with nul"  # lengths, not NULs
    assert e.conn is None


def test_decode_empty_event_and_unknown_kind() -> None:
    ev = _ffi.gm_event()
    ev.size = ctypes.sizeof(ev)
    ev.kind = 99  # a kind from a newer library: kept as an int
    e = decode(ctypes.addressof(ev), lambda _a: None)
    assert e.kind == 99 and e.headers == [] and e.data == b"" and e.reason is None and e.killed == []


def test_wsframe_helpers() -> None:
    f = gunmetal.WSFrame.text("hé")
    assert f.opcode == gunmetal.WSOpcode.TEXT and f.as_text() == "hé"
    c = gunmetal.WSFrame.close(4000, "bye")
    assert (c.opcode, c.code, c.data) == (gunmetal.WSOpcode.CLOSE, 4000, b"bye")
    assert gunmetal.WSFrame.ping().data == b"" and gunmetal.WSFrame.binary(bytearray(b"x")).data == b"x"
