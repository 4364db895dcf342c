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

The library is loaded by absolute path on first use (not at import: it starts
a Go runtime, see ensure_loaded): ``$GUNMETAL_LIBRARY`` when set (for
development against a build directory), else ``libgunmetal.so`` next to this
file, where ``pip install`` puts it.  A function the loaded library lacks
(an older build) is replaced by a stub raising :class:`gunmetal.Unsupported`
when called, so that a partial library never crashes the host.
"""

from __future__ import annotations

import ctypes
import os
import struct
import threading
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
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

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
GM_EAGAIN = -13

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
GM_EV_TRACE = 14
GM_EV_SSE = 15
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
GM_AWAIT_BODY_MAX = 1073741824  # the largest body gm_await_body collects
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
        ("ts_ns", c_int64),
    ]


class gm_req_opts(Structure):
    _fields_ = [
        ("size", c_uint32),
        ("timeout_ms", c_int32),
        ("flow", c_int32),
        ("reply_to", c_void_p),
        ("content_handlers_json", c_char_p),
        ("tunnel", c_uint64),
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
    c_int64: "q",
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
    "gm_flush": (c_int, [c_void_p, c_void_p, c_uint64]),
    "gm_tls_session_cache": (c_int, [c_int, c_int64]),
    "gm_cookies_get": (c_int, [c_void_p, POINTER(c_void_p)]),
    "gm_cookies_set": (c_int, [c_void_p, c_char_p]),
    "gm_open": (c_int, [c_void_p, c_char_p, c_int, c_char_p, POINTER(c_void_p)]),
    "gm_open_unix": (c_int, [c_void_p, c_char_p, c_char_p, POINTER(c_void_p)]),
    "gm_open_fd": (c_int, [c_void_p, c_int, c_char_p, POINTER(c_void_p)]),
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
    "gm_connect": (
        c_int,
        [c_void_p, c_char_p, POINTER(gm_header), c_size_t, POINTER(gm_req_opts), POINTER(c_uint64)],
    ),
    "gm_data": (c_int, [c_void_p, c_uint64, c_void_p, c_size_t, c_int]),
    "gm_cancel": (c_int, [c_void_p, c_uint64]),
    "gm_update_flow": (c_int, [c_void_p, c_uint64, c_int]),
    "gm_await": (c_int, [c_void_p, c_uint64, c_int, POINTER(c_void_p)]),
    "gm_await_body": (c_int, [c_void_p, c_uint64, c_int, POINTER(c_void_p)]),
    "gm_info": (c_int, [c_void_p, POINTER(c_void_p)]),
    "gm_stream_info": (c_int, [c_void_p, c_uint64, POINTER(c_void_p)]),
    "gm_ping": (c_int, [c_void_p, POINTER(c_uint64)]),
    "gm_ping_tunnel": (c_int, [c_void_p, c_uint64, POINTER(c_uint64)]),
    "gm_ws_upgrade": (
        c_int,
        [c_void_p, c_char_p, POINTER(gm_header), c_size_t, c_char_p, POINTER(c_uint64)],
    ),
    "gm_ws_upgrade_to": (
        c_int,
        [c_void_p, c_char_p, POINTER(gm_header), c_size_t, c_char_p, c_void_p, POINTER(c_uint64)],
    ),
    "gm_ws_send": (c_int, [c_void_p, c_uint64, POINTER(gm_ws_frame), c_size_t]),
    "gm_ws_send_nowait": (c_int, [c_void_p, c_uint64, POINTER(gm_ws_frame), c_size_t]),
    "gm_data_v2": (c_int, [c_void_p, c_uint64, c_void_p, c_size_t, c_int, POINTER(c_size_t)]),
}

# Exports that are not in the header: looked up, never required.
OPTIONAL_FUNCTIONS: Dict[str, Tuple[Any, List[Any]]] = {
    # Test-only: handles not yet released (capi's leak counter).
    "gm__live_handles": (c_int64, []),
    # Test-only: every goroutine's stack to stderr (a watchdog's look at a hang).
    "gm__dump_goroutines": (None, []),
}


def library_path() -> str:
    """The absolute path the library is (or would be) loaded from."""
    env = os.environ.get("GUNMETAL_LIBRARY")
    if env:
        return os.path.abspath(env)
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "libgunmetal.so")


LIBRARY_PATH = library_path()


def _check_exists(path: str) -> None:
    if not os.path.exists(path):
        raise ImportError(
            f"gunmetal: the shared library is missing: {path} does not exist. "
            "Install the package with pip (it builds libgunmetal.so), or set "
            "GUNMETAL_LIBRARY=/path/to/libgunmetal.so."
        )


# Said at import (a cheap look, nothing is loaded): a missing library is a
# broken install, better known before the first call.
_check_exists(LIBRARY_PATH)

FORK_MESSAGE = (
    "gunmetal cannot be used in a process forked after it loaded libgunmetal: "
    "the library's Go runtime does not survive fork(), so any call would hang. "
    "Use multiprocessing.set_start_method(\"spawn\") (or \"forkserver\"), or fork "
    "before gunmetal's first use and open the connections in the child."
)

# The library is loaded on first use, not at import: loading starts a Go
# runtime, which a forked child does not inherit alive. A process that forks
# before its first call can use gunmetal in parent and child alike; in a
# child forked after the load every call raises ForkError at once (see
# _after_fork_in_child) instead of hanging.
_load_lock = threading.Lock()
loaded = False
forked = False  # True in a child forked after the library was loaded

missing: List[str] = []


def _load() -> ctypes.CDLL:
    path = LIBRARY_PATH
    _check_exists(path)
    try:
        return ctypes.CDLL(path)
    except OSError as e:
        raise ImportError(f"gunmetal: cannot load {path}: {e}") from e


def _missing_stub(name: str) -> Callable[..., Any]:
    def stub(*args: Any) -> Any:
        from ._errors import Unsupported

        raise Unsupported(
            GM_EUNSUPPORTED,
            f"{name} is not exported by the loaded library {LIBRARY_PATH}: "
            "it is older than this binding",
        )

    return stub


def _fork_stub(name: str) -> Callable[..., Any]:
    def stub(*args: Any) -> Any:
        from ._errors import ForkError

        raise ForkError(GM_EBADSTATE, FORK_MESSAGE)

    stub.__name__ = name
    return stub


def _bind(lib: ctypes.CDLL, table: Dict[str, Tuple[Any, List[Any]]], required: bool) -> Dict[str, Any]:
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


def _noconv(lib: ctypes.CDLL, name: str, restype: Any, fns: Dict[str, Any]) -> Any:
    """A second function object for `name` without argtypes, for the hot
    paths: ctypes then converts no argument, so the caller must pass each
    one as the exact C type already (a ctypes instance, byref(), bytes for a
    const char *, None for NULL; a Python int only where the C type is
    int). Declared types stay in FUNCTIONS (and are checked against the
    header); this is the same function, called with less work."""
    if name in missing:
        return fns[name]
    f = lib._FuncPtr((name, lib))
    f.restype = restype
    return f


def _after_fork_in_child() -> None:
    global forked
    forked = True
    g = globals()
    for name in list(FUNCTIONS) + list(OPTIONAL_FUNCTIONS) + ["gm_request_noconv"]:
        if name in g and g[name] is not None:
            g[name] = _fork_stub(name)


def ensure_loaded() -> None:
    """Loads the library and binds its functions as this module's gm_*
    names (after the first call, a plain module attribute each)."""
    global loaded, lib
    if loaded:
        return
    if forked:
        _fork_stub("load")()
    with _load_lock:
        if loaded:
            return
        lib = _load()
        fns = _bind(lib, FUNCTIONS, True)
        opt = _bind(lib, OPTIONAL_FUNCTIONS, False)
        g = globals()
        g.update(fns)
        g["gm__live_handles"] = opt.get("gm__live_handles")
        # gm_request(c_void_p conn, bytes method, bytes path, gm_header array | None,
        #            c_size_t n, bytes | None body, c_size_t len, int flags,
        #            byref(gm_req_opts) | None, byref(c_uint64))
        g["gm_request_noconv"] = _noconv(lib, "gm_request", c_int, fns)
        os.register_at_fork(after_in_child=_after_fork_in_child)
        loaded = True


def has(name: str) -> bool:
    """Whether the loaded library exports `name` and this binding declares it."""
    ensure_loaded()
    if name in OPTIONAL_FUNCTIONS:
        return globals().get(name) is not None
    return name in FUNCTIONS and name not in missing


_LAZY = frozenset(list(FUNCTIONS) + list(OPTIONAL_FUNCTIONS) + ["gm_request_noconv", "lib"])


def __getattr__(name: str) -> Any:
    # Module attributes that need the library: the first access loads it.
    if name in _LAZY:
        ensure_loaded()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:  # the names ensure_loaded() binds, for mypy
    lib: ctypes.CDLL
    gm_version: Any
    gm_version_number: Any
    gm_strerror: Any
    gm_errmsg: Any
    gm_event_free: Any
    gm_events_free: Any
    gm_queue_new: Any
    gm_queue_free: Any
    gm_queue_fd: Any
    gm_queue_poll: Any
    gm_queue_wake: Any
    gm_queue_len: Any
    gm_flush: Any
    gm_tls_session_cache: Any
    gm_cookies_get: Any
    gm_cookies_set: Any
    gm_open: Any
    gm_open_unix: Any
    gm_open_fd: Any
    gm_data_v2: Any
    gm_close: Any
    gm_shutdown: Any
    gm_conn_free: Any
    gm_set_owner: Any
    gm_await_up: Any
    gm_request: Any
    gm_connect: Any
    gm_data: Any
    gm_cancel: Any
    gm_update_flow: Any
    gm_await: Any
    gm_await_body: Any
    gm_info: Any
    gm_stream_info: Any
    gm_ping: Any
    gm_ping_tunnel: Any
    gm_ws_upgrade: Any
    gm_ws_upgrade_to: Any
    gm_ws_send: Any
    gm__live_handles: Optional[Any]
    gm_request_noconv: Any
