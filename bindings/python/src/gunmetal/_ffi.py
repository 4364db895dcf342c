"""ctypes declarations of include/gunmetal.h, and the loaded library.

Every function and struct of the header is declared here, by hand, in the
header's order; ``tests/test_ffi_header.py`` parses the header and fails when
a function, an argument, a return type or a struct field differs.

C type  → ctypes used here
  int / unsigned / size_t / uintN_t / intN_t / gm_ref → the matching c_* type
  const char *                    → c_char_p
  gm_queue * / gm_conn * / void * → c_void_p (opaque handles are plain addresses)
  gm_event *                      → c_void_p (events are read with ``struct``)
  gm_event ** / gm_conn **        → POINTER(c_void_p)
  const char **                   → POINTER(c_char_p)
  const gm_header * ...           → POINTER(gm_header) ...

The library is loaded by absolute path: ``$GUNMETAL_LIBRARY`` when set (for
development against a build directory), else ``libgunmetal.so`` next to this
file, where ``pip install`` puts it.  A function the loaded library lacks
(an older build) is replaced by a stub raising :class:`gunmetal.Unsupported`
when called, so that a partial library never crashes the host.
"""

from __future__ import annotations

import ctypes
import os
import struct
from ctypes import (
    POINTER,
    Structure,
    c_char_p,
    c_int,
    c_int32,
    c_int64,
    c_size_t,
    c_uint,
    c_uint8,
    c_uint16,
    c_uint32,
    c_uint64,
    c_void_p,
)
from typing import Any, Callable, Dict, List, Optional, Tuple

# ------------------------------------------------------------------ constants

GM_OK = 0
GM_EINVAL = -1
GM_ENOMEM = -2
GM_ECLOSED = -3
GM_ETIMEOUT = -4
GM_EOPTION = -5
GM_ENOSTREAM = -6
GM_ENOTUP = -7
GM_EBADSTATE = -8
GM_EUNSUPPORTED = -9
GM_ESTREAM = -10
GM_EINTERNAL = -11
GM_EQUEUE = -12

GM_EV_UP = 1
GM_EV_DOWN = 2
GM_EV_EXIT = 3
GM_EV_INFORM = 4
GM_EV_RESPONSE = 5
GM_EV_DATA = 6
GM_EV_TRAILERS = 7
GM_EV_PUSH = 8
GM_EV_ERROR = 9
GM_EV_UPGRADE = 10
GM_EV_WS = 11
GM_EV_NOTIFY = 12
GM_EV_TUNNEL_UP = 13
GM_EV_INFO = 100

GM_WS_TEXT = 1
GM_WS_BINARY = 2
GM_WS_CLOSE = 8
GM_WS_PING = 9
GM_WS_PONG = 10

GM_REQ_STREAM = 0x1

# Limits on what one call takes (gunmetal.h, CONVENTIONS: Limits).
GM_MAX_STRING = 65536
GM_MAX_OPTS_JSON = 1048576
GM_MAX_HEADERS = 65536
GM_MAX_HEADER_BYTES = 1048576
GM_MAX_BODY = 1073741824
GM_MAX_WS_FRAMES = 1048576
GM_POLL_MAX = 256  # gm_queue_poll hands over at most this many events per call

# ------------------------------------------------------------------ structs


class gm_header(Structure):
    _fields_ = [
        ("name", c_char_p),
        ("value", c_char_p),
        ("name_len", c_size_t),
        ("value_len", c_size_t),
    ]


class gm_event(Structure):
    _fields_ = [
        ("size", c_uint32),
        ("kind", c_uint16),
        ("fin", c_uint8),
        ("ws_opcode", c_uint8),
        ("status", c_int32),
        ("conn", c_void_p),
        ("ref", c_uint64),
        ("new_ref", c_uint64),
        ("protocol", c_char_p),
        ("reason", c_char_p),
        ("method", c_char_p),
        ("uri", c_char_p),
        ("headers", POINTER(gm_header)),
        ("n_headers", c_size_t),
        ("data", POINTER(c_uint8)),
        ("data_len", c_size_t),
        ("killed", POINTER(c_uint64)),
        ("n_killed", c_size_t),
    ]


class gm_req_opts(Structure):
    _fields_ = [
        ("size", c_uint32),
        ("timeout_ms", c_int32),
        ("flow", c_int32),
        ("reply_to", c_void_p),
    ]


class gm_ws_frame(Structure):
    _fields_ = [
        ("op", c_uint32),
        ("code", c_uint32),
        ("data", c_void_p),
        ("len", c_size_t),
    ]


STRUCTS: Dict[str, Any] = {
    "gm_header": gm_header,
    "gm_event": gm_event,
    "gm_req_opts": gm_req_opts,
    "gm_ws_frame": gm_ws_frame,
}

# Events are decoded with one struct.unpack of a copy of the gm_event, which
# is several times faster than reading a ctypes Structure field by field.
_STRUCT_CODES: Dict[Any, str] = {
    c_uint32: "I",
    c_uint16: "H",
    c_uint8: "B",
    c_int32: "i",
    c_uint64: "Q",
    c_size_t: "N",
    c_void_p: "P",
    c_char_p: "P",
}


def _struct_format(st: Any) -> str:
    codes = []
    for _, t in st._fields_:
        codes.append(_STRUCT_CODES.get(t, "P"))  # every other field is a pointer
    return "@" + "".join(codes)


EVENT_FORMAT = _struct_format(gm_event)
EVENT_SIZE = ctypes.sizeof(gm_event)
HEADER_FORMAT = _struct_format(gm_header)
HEADER_SIZE = ctypes.sizeof(gm_header)
assert struct.calcsize(EVENT_FORMAT) == EVENT_SIZE, "gm_event layout"
assert struct.calcsize(HEADER_FORMAT) == HEADER_SIZE, "gm_header layout"

# ------------------------------------------------------------------ functions

# name: (restype, argtypes), in the header's order.
FUNCTIONS: Dict[str, Tuple[Any, List[Any]]] = {
    "gm_version": (c_char_p, []),
    "gm_version_number": (c_int, []),
    "gm_strerror": (c_char_p, [c_int]),
    "gm_errmsg": (c_char_p, []),
    "gm_event_free": (None, [c_void_p]),
    "gm_events_free": (None, [POINTER(c_void_p), c_int]),
    "gm_queue_new": (c_void_p, []),
    "gm_queue_free": (None, [c_void_p]),
    "gm_queue_fd": (c_int, [c_void_p]),
    "gm_queue_poll": (c_int, [c_void_p, POINTER(c_void_p), c_int, c_int]),
    "gm_queue_wake": (c_int, [c_void_p]),
    "gm_queue_len": (c_int, [c_void_p]),
    "gm_open": (c_int, [c_void_p, c_char_p, c_int, c_char_p, POINTER(c_void_p)]),
    "gm_open_unix": (c_int, [c_void_p, c_char_p, c_char_p, POINTER(c_void_p)]),
    "gm_close": (c_int, [c_void_p]),
    "gm_shutdown": (c_int, [c_void_p]),
    "gm_conn_free": (None, [c_void_p]),
    "gm_set_owner": (c_int, [c_void_p, c_void_p]),
    "gm_await_up": (c_int, [c_void_p, c_int, POINTER(c_char_p)]),
    "gm_request": (
        c_int,
        [
            c_void_p,
            c_char_p,
            c_char_p,
            POINTER(gm_header),
            c_size_t,
            c_void_p,
            c_size_t,
            c_uint,
            POINTER(gm_req_opts),
            POINTER(c_uint64),
        ],
    ),
    "gm_data": (c_int, [c_void_p, c_uint64, c_void_p, c_size_t, c_int]),
    "gm_cancel": (c_int, [c_void_p, c_uint64]),
    "gm_update_flow": (c_int, [c_void_p, c_uint64, c_int]),
    "gm_await": (c_int, [c_void_p, c_uint64, c_int, POINTER(c_void_p)]),
    "gm_await_body": (c_int, [c_void_p, c_uint64, c_int, POINTER(c_void_p)]),
    "gm_info": (c_int, [c_void_p, POINTER(c_void_p)]),
    "gm_stream_info": (c_int, [c_void_p, c_uint64, POINTER(c_void_p)]),
    "gm_ping": (c_int, [c_void_p, POINTER(c_uint64)]),
    "gm_ws_upgrade": (
        c_int,
        [c_void_p, c_char_p, POINTER(gm_header), c_size_t, c_char_p, POINTER(c_uint64)],
    ),
    "gm_ws_send": (c_int, [c_void_p, c_uint64, POINTER(gm_ws_frame), c_size_t]),
}

# Exports that are not in the header: looked up, never required.
OPTIONAL_FUNCTIONS: Dict[str, Tuple[Any, List[Any]]] = {
    # Test-only: handles not yet released (capi's leak counter).
    "gm__live_handles": (c_int64, []),
}


def library_path() -> str:
    """The absolute path the library is (or would be) loaded from."""
    env = os.environ.get("GUNMETAL_LIBRARY")
    if env:
        return os.path.abspath(env)
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "libgunmetal.so")


def _load() -> ctypes.CDLL:
    path = library_path()
    if not os.path.exists(path):
        raise ImportError(
            f"gunmetal: the shared library is missing: {path} does not exist. "
            "Install the package with pip (it builds libgunmetal.so), or set "
            "GUNMETAL_LIBRARY=/path/to/libgunmetal.so."
        )
    try:
        return ctypes.CDLL(path)
    except OSError as e:
        raise ImportError(f"gunmetal: cannot load {path}: {e}") from e


lib = _load()
LIBRARY_PATH = library_path()

missing: List[str] = []


def _missing_stub(name: str) -> Callable[..., Any]:
    def stub(*args: Any) -> Any:
        from ._errors import Unsupported

        raise Unsupported(
            GM_EUNSUPPORTED,
            f"{name} is not exported by the loaded library {LIBRARY_PATH}: "
            "it is older than this binding",
        )

    return stub


def _bind(table: Dict[str, Tuple[Any, List[Any]]], required: bool) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for name, (restype, argtypes) in table.items():
        try:
            f = getattr(lib, name)
        except AttributeError:
            if required:
                missing.append(name)
                out[name] = _missing_stub(name)
            continue
        f.restype = restype
        f.argtypes = argtypes
        out[name] = f
    return out


_fns = _bind(FUNCTIONS, True)
_opt = _bind(OPTIONAL_FUNCTIONS, False)


def has(name: str) -> bool:
    """Whether the loaded library exports `name` and this binding declares it."""
    return (name in FUNCTIONS and name not in missing) or name in _opt


# Module-level names for the hot paths (one attribute lookup per call).
gm_version: Any = _fns["gm_version"]
gm_version_number: Any = _fns["gm_version_number"]
gm_strerror: Any = _fns["gm_strerror"]
gm_errmsg: Any = _fns["gm_errmsg"]
gm_event_free: Any = _fns["gm_event_free"]
gm_events_free: Any = _fns["gm_events_free"]
gm_queue_new: Any = _fns["gm_queue_new"]
gm_queue_free: Any = _fns["gm_queue_free"]
gm_queue_fd: Any = _fns["gm_queue_fd"]
gm_queue_poll: Any = _fns["gm_queue_poll"]
gm_queue_wake: Any = _fns["gm_queue_wake"]
gm_queue_len: Any = _fns["gm_queue_len"]
gm_open: Any = _fns["gm_open"]
gm_open_unix: Any = _fns["gm_open_unix"]
gm_close: Any = _fns["gm_close"]
gm_shutdown: Any = _fns["gm_shutdown"]
gm_conn_free: Any = _fns["gm_conn_free"]
gm_set_owner: Any = _fns["gm_set_owner"]
gm_await_up: Any = _fns["gm_await_up"]
gm_request: Any = _fns["gm_request"]
gm_data: Any = _fns["gm_data"]
gm_cancel: Any = _fns["gm_cancel"]
gm_update_flow: Any = _fns["gm_update_flow"]
gm_await: Any = _fns["gm_await"]
gm_await_body: Any = _fns["gm_await_body"]
gm_info: Any = _fns["gm_info"]
gm_stream_info: Any = _fns["gm_stream_info"]
gm_ping: Any = _fns["gm_ping"]
gm_ws_upgrade: Any = _fns["gm_ws_upgrade"]
gm_ws_send: Any = _fns["gm_ws_send"]
gm__live_handles: Optional[Any] = _opt.get("gm__live_handles")


def _noconv(name: str, restype: Any) -> Any:
    """A second function object for `name` without argtypes, for the hot
    paths: ctypes then converts no argument, so the caller must pass each
    one as the exact C type already (a ctypes instance, byref(), bytes for a
    const char *, None for NULL; a Python int only where the C type is
    int). Declared types stay in FUNCTIONS (and are checked against the
    header); this is the same function, called with less work."""
    if name in missing:
        return _fns[name]
    f = lib._FuncPtr((name, lib))
    f.restype = restype
    return f


# gm_request(c_void_p conn, bytes method, bytes path, gm_header array | None,
#            c_size_t n, bytes | None body, c_size_t len, int flags,
#            byref(gm_req_opts) | None, byref(c_uint64))
gm_request_noconv: Any = _noconv("gm_request", c_int)
