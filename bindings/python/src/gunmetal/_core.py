"""The sync API: Managed handles, Queue, Connection, open/open_unix.

A thin layer over libgunmetal: argument conversion, one C call, error
conversion. No protocol logic lives here.
"""

from __future__ import annotations

import ctypes
import json
import math
import _thread
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import Mapping
from ctypes import byref, c_char, c_char_p, c_size_t, c_uint64, c_void_p
from typing import (
    Any,
    Callable,
    Deque,
    Dict,
    Iterable,
    List,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)

from . import _ffi
from ._errors import (
    BadState,
    Closed,
    ConnectionClosed,
    Error,
    InvalidArgument,
    OptionError,
    TunnelRefused,
    UpgradeRejected,
    check,
    closed_error,
    errmsg,
    from_code,
    stream_error,
)
from ._response import Headers, Response, SyncMode
from ._events import (
    Body,
    Event,
    EventKind,
    Received,
    SSEEvent,
    WSFrame,
    WSMessage,
    WSOpcode,
    decode,
    decode_many,
    is_event_stream,
    ws_received,
)

StrOrBytes = Union[str, bytes]
HeadersIn = Union[
    Mapping[StrOrBytes, StrOrBytes],
    Iterable[Tuple[StrOrBytes, StrOrBytes]],
    None,
]
"""Request headers: a list of (name, value) pairs of str or bytes, or a mapping."""

BufferLike = Union[bytes, bytearray, memoryview, str]
"""A body: bytes, str (sent as UTF-8) or any object with the buffer protocol."""

POLL_BATCH = 256
# Every blocking call waits in the library at most this long at a time, then
# comes back to Python, so a signal (Ctrl-C) is handled within about that.
_SLICE_MS = 100
_INT_MAX = 2**31 - 1
_monotonic = time.monotonic


def _deadline(ms: int) -> Optional[float]:
    """timeout_ms() → a time.monotonic() deadline; None for forever."""
    return None if ms < 0 else _monotonic() + ms / 1000


def _slice(end: Optional[float]) -> int:
    """The next wait's milliseconds towards deadline `end` (0: time is up)."""
    if end is None:
        return _SLICE_MS
    left = end - _monotonic()
    if left <= 0:
        return 0
    return min(_SLICE_MS, int(math.ceil(left * 1000)))


# ------------------------------------------------------------------ registry

# The Python object of every live connection handle, by address, so events
# can name their connection. An event keeps its connection's address from
# being reused while it lives, so a lookup can never find the wrong object.
_conns: "weakref.WeakValueDictionary[int, BaseConnection]" = weakref.WeakValueDictionary()
_lookup: Callable[[int], Any] = _conns.get

# ------------------------------------------------------------------ conversions


def timeout_ms(timeout: Optional[float], what: str = "timeout") -> int:
    """Seconds (float) → the library's milliseconds; None → -1 (forever)."""
    if timeout is None:
        return -1
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{what} must be a number of seconds or None, not {type(timeout).__name__}")
    if math.isnan(timeout):
        raise ValueError(f"{what} is NaN")
    if timeout <= 0:
        return 0
    return min(_INT_MAX, int(math.ceil(timeout * 1000)))


def _cstr(x: Any, what: str) -> bytes:
    """A NUL-terminated C string argument: str (UTF-8) or bytes, without NUL."""
    if isinstance(x, str):
        b = x.encode("utf-8", "surrogateescape")
    elif isinstance(x, bytes):
        b = x
    elif isinstance(x, (bytearray, memoryview)):
        b = bytes(x)
    else:
        raise TypeError(f"{what} must be str or bytes, not {type(x).__name__}")
    if b"\x00" in b:
        # ctypes would cut the string there: refuse rather than send less.
        raise InvalidArgument(_ffi.GM_EINVAL, f"{what} contains a NUL byte")
    return b


def _hstr(x: Any, what: str) -> bytes:
    if isinstance(x, str):
        return x.encode("utf-8", "surrogateescape")
    if isinstance(x, bytes):
        return x
    if isinstance(x, (bytearray, memoryview)):
        return bytes(x)
    raise TypeError(f"{what} must be str or bytes, not {type(x).__name__}")


def c_headers(headers: HeadersIn) -> Tuple[Any, int]:
    """(gm_header array or None, count). The array keeps its bytes alive."""
    if not headers:
        return None, 0
    if isinstance(headers, (str, bytes)):
        raise TypeError("headers must be a list of (name, value) pairs or a mapping, not a string")
    items: Iterable[Any] = headers.items() if isinstance(headers, Mapping) else headers
    try:
        pairs = list(items)
    except TypeError:
        raise TypeError(
            f"headers must be a list of (name, value) pairs or a mapping, not {type(headers).__name__}"
        ) from None
    n = len(pairs)
    if n == 0:
        return None, 0
    arr = (_ffi.gm_header * n)()
    for i, pair in enumerate(pairs):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"header {i} must be a (name, value) pair, not {pair!r:.60}")
        name = _hstr(pair[0], f"header {i} name")
        value = _hstr(pair[1], f"header {i} value")
        h = arr[i]
        h.name = name
        h.name_len = len(name)
        h.value = value
        h.value_len = len(value)
    return arr, n


# Read-only buffers other than bytes (a memoryview slice of bytes, say) are
# passed without a copy through the buffer protocol, where CPython has it.
class _Py_buffer(ctypes.Structure):
    _fields_ = [
        ("buf", c_void_p),
        ("obj", c_void_p),
        ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t),
        ("readonly", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("format", c_char_p),
        ("shape", c_void_p),
        ("strides", c_void_p),
        ("suboffsets", c_void_p),
        ("internal", c_void_p),
    ]


try:
    _GetBuffer: Any = ctypes.pythonapi.PyObject_GetBuffer
    _GetBuffer.argtypes = [ctypes.py_object, ctypes.POINTER(_Py_buffer), ctypes.c_int]
    _GetBuffer.restype = ctypes.c_int
    _ReleaseBuffer: Any = ctypes.pythonapi.PyBuffer_Release
    _ReleaseBuffer.argtypes = [ctypes.POINTER(_Py_buffer)]
    _ReleaseBuffer.restype = None
except (AttributeError, OSError):  # not CPython
    _GetBuffer = None
    _ReleaseBuffer = None


class _Buf:
    """A body argument as (pointer, length) for the length of one C call."""

    __slots__ = ("ptr", "len", "_view", "_keep")

    def __init__(self, body: Any, what: str = "body") -> None:
        self._view: Optional[_Py_buffer] = None
        self._keep: Any = None
        if body is None:
            self.ptr: Any = None
            self.len = 0
            return
        if isinstance(body, bytes):
            self.ptr, self.len = (body if body else None), len(body)
            return
        if isinstance(body, str):
            b = body.encode("utf-8")
            self.ptr, self.len = (b if b else None), len(b)
            return
        try:
            mv = memoryview(body)
        except TypeError:
            raise TypeError(f"{what} must be bytes, str or a buffer, not {type(body).__name__}") from None
        n = mv.nbytes
        self.len = n
        if n == 0:
            self.ptr = None
            return
        if not mv.c_contiguous:
            b = mv.tobytes()
            self.ptr = b
            return
        if not mv.readonly:
            arr = (c_char * n).from_buffer(mv.cast("B") if mv.format != "B" or mv.ndim != 1 else mv)
            self._keep = arr
            self.ptr = ctypes.addressof(arr)
            return
        if _GetBuffer is not None:
            view = _Py_buffer()
            if _GetBuffer(mv, byref(view), 0) == 0:
                self._view = view
                self._keep = mv
                self.ptr = view.buf
                return
        b = mv.tobytes()
        self.ptr = b

    def release(self) -> None:
        if self._view is not None:
            _ReleaseBuffer(byref(self._view))
            self._view = None
        self._keep = None


def opts_json(opts: Mapping[str, Any], prefix: str = "") -> Optional[bytes]:
    """Connection options (Gun's keys) → the JSON object the library takes."""
    if not opts:
        return None
    for k, v in opts.items():
        try:
            json.dumps(v, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise OptionError(_ffi.GM_EOPTION, f"option {prefix}{k}: {e}", key=prefix + k) from None
    return json.dumps(dict(opts), allow_nan=False).encode("utf-8")


def py_defaults(opts: Mapping[str, Any]) -> Mapping[str, Any]:
    """The options with Python's defaults where they differ from Gun's:
    an HTTP/2 request beyond the server's max_concurrent_streams waits for
    a stream slot (http2_opts.wait_for_stream_slot, as httpx and aiohttp
    queue) instead of failing at once with ERROR "too_many_streams". Gun's
    behaviour: ``http2_opts={"wait_for_stream_slot": False}`` (also inside
    a protocols entry's options, which replace http2_opts as in Gun)."""
    o = dict(opts)
    h2 = o.get("http2_opts")
    if h2 is None:
        o["http2_opts"] = {"wait_for_stream_slot": True}
    elif isinstance(h2, Mapping) and "wait_for_stream_slot" not in h2:
        o["http2_opts"] = {**h2, "wait_for_stream_slot": True}
    protos = o.get("protocols")
    if isinstance(protos, (list, tuple)):
        out: List[Any] = []
        for p in protos:
            # ["http2", {...}] and {"http2": {...}}: that connection's http2_opts
            if (isinstance(p, (list, tuple)) and len(p) == 2 and p[0] == "http2" and isinstance(p[1], Mapping)
                    and "wait_for_stream_slot" not in p[1]):
                p = [p[0], {**p[1], "wait_for_stream_slot": True}]
            elif (isinstance(p, Mapping) and len(p) == 1 and isinstance(p.get("http2"), Mapping)
                    and "wait_for_stream_slot" not in p["http2"]):
                p = {"http2": {**p["http2"], "wait_for_stream_slot": True}}
            out.append(p)
        o["protocols"] = out
    return o


# ------------------------------------------------------------------ Managed

_close_lock = threading.Lock()
M = TypeVar("M", bound="Managed")


class Managed:
    """A library handle owned by a Python object.

    ``close()`` releases it (idempotent, thread-safe); the object is a context
    manager; ``__del__`` releases a handle that was never closed.  Using the
    object after ``close()`` raises :class:`gunmetal.Closed`.
    """

    _handle: Optional[int] = None
    _kind = "handle"

    def _h(self) -> int:
        h = self._handle
        if h is None:
            raise Closed(_ffi.GM_ECLOSED, f"{self._kind} is closed: close() was called")
        return h

    @classmethod
    def _open_fd_handle(
        cls, fd: Any, owner: Optional[Queue], opts: Mapping[str, Any]
    ) -> Tuple[int, Queue, bool, str]:
        if isinstance(fd, bool) or not isinstance(fd, int):
            raise TypeError(f"fd must be an int, not {type(fd).__name__}")
        if not -(2**31) <= fd < 2**31:
            raise InvalidArgument(_ffi.GM_EINVAL, f"fd {fd} out of range")
        js = opts_json(py_defaults(opts))
        q, own = _owner_queue(owner)
        out = c_void_p()
        rc = _ffi.gm_open_fd(q._h(), fd, js, byref(out))
        if rc < 0:
            err = from_code(rc)
            if own:
                q.close()
            raise err
        assert out.value
        return out.value, q, own, f"fd:{fd}"

    def _release(self, handle: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._handle is None

    def close(self) -> None:
        """Releases the handle. Idempotent. In a child forked after the
        library was loaded it only forgets the handle (the parent's)."""
        with _close_lock:
            h = self._handle
            self._handle = None
        if h is not None and not _ffi.forked:
            self._release(h)

    def __enter__(self: M) -> M:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    #: False for a queue a connection made for itself: closing the
    #: connection closes it, so the connection's warning says it all.
    _warn_unclosed = True

    def __del__(self) -> None:
        if self._handle is not None:
            # As io and socket do: a handle left to the garbage collector is
            # a bug in the program (the library holds a socket and threads
            # until then); say so, and still release it.
            warn = self._warn_unclosed and not _ffi.forked
            what = ""
            try:
                if warn:
                    what = repr(self)
                self.close()
            except Exception:  # interpreter shutdown: nothing left to report to
                pass
            if warn:
                try:
                    warnings.warn(f"unclosed {what}: close() it, or use it in a with block",
                                  ResourceWarning, source=self)
                except (AttributeError, TypeError, ImportError):  # interpreter shutdown
                    pass


# ------------------------------------------------------------------ Queue

# The queues holding events that a sync data()/ws_send() took early (see
# Queue._hold): the awaits look there first. Empty in the usual case.
_holding: "weakref.WeakSet[Queue]" = weakref.WeakSet()
_holding_lock = threading.Lock()


def _held_size(ev: Event) -> int:
    return len(ev.data) + 128  # the bytes, and about what the rest of an event weighs


class Queue(Managed):
    """An owner's mailbox (gm_queue): the events of the connections it owns.

    ``fileno()`` is readable while events wait (level-triggered), for
    select/poll/epoll/asyncio; ``poll(max, timeout)`` takes up to `max` events
    in one call.  Closing a queue closes every connection it owns.
    """

    _kind = "queue"

    def __init__(self) -> None:
        h = _ffi.gm_queue_new()
        if not h:
            raise from_code(_ffi.GM_ENOMEM)
        self._handle = h
        self._fd = check(_ffi.gm_queue_fd(h))
        self._bufs: List[Any] = []
        self._wakes = 0
        # Events a sync Connection.data()/ws_send() took out of the library's
        # queue while it waited (the response of the stream it sends): they
        # stay this queue's, ahead of the library's, for poll() and awaits.
        self._held: Deque[Event] = deque()
        self._held_bytes = 0
        self._held_lock = threading.Lock()

    def _hold(self, ev: Event) -> None:
        with self._held_lock:
            self._held.append(ev)
            self._held_bytes += _held_size(ev)
            with _holding_lock:
                _holding.add(self)

    def _take_held(self, max: int, conn: Any = None, ref: int = 0) -> List[Event]:
        """Up to `max` held events, oldest first; with `conn`, only the first
        one of its stream `ref` (or a connection-wide ERROR), as await does."""
        out: List[Event] = []
        with self._held_lock:
            held = self._held
            if conn is None:
                while held and len(out) < max:
                    out.append(held.popleft())
            else:
                for i, ev in enumerate(held):
                    if ev.conn is conn and ev.kind != EventKind.TRACE and (
                        ev.ref == ref or (ev.ref == 0 and ev.kind == EventKind.ERROR)
                    ):
                        del held[i]
                        out.append(ev)
                        break
            for ev in out:
                self._held_bytes -= _held_size(ev)
            if not held:
                with _holding_lock:
                    _holding.discard(self)
        return out

    def _release(self, handle: int) -> None:
        # Wake a thread blocked in poll before freeing (the header's rule).
        _ffi.gm_queue_wake(handle)
        _ffi.gm_queue_free(handle)
        with self._held_lock:
            self._held.clear()
            self._held_bytes = 0
            with _holding_lock:
                _holding.discard(self)

    def fileno(self) -> int:
        """The queue's fd (owned by the queue: do not close or read it)."""
        self._h()
        return self._fd

    def __len__(self) -> int:
        return check(_ffi.gm_queue_len(self._h()))

    def wake(self) -> None:
        """Makes a poll blocked in another thread return (with no events)."""
        h = self._h()
        self._wakes += 1
        check(_ffi.gm_queue_wake(h))

    def poll(self, max: int = POLL_BATCH, timeout: Optional[float] = None) -> List[Event]:
        """Takes up to `max` events, waiting up to `timeout` seconds for the
        first one (None: until one comes or :meth:`wake`; 0: don't wait).
        Returns [] on timeout or wake. The C events are freed before this
        returns: everything is copied into the Event objects."""
        h = self._h()
        if isinstance(max, bool) or not isinstance(max, int):
            raise TypeError(f"max must be an int, not {type(max).__name__}")
        if max <= 0:
            raise InvalidArgument(_ffi.GM_EINVAL, f"max must be > 0, not {max}")
        ms = timeout_ms(timeout)
        if self._held:
            evs = self._take_held(max)
            if evs:
                if len(evs) < max:
                    evs += self.poll(max - len(evs), 0)
                return evs
        pooled = max <= POLL_BATCH
        if pooled:
            try:
                buf = self._bufs.pop()
            except IndexError:
                buf = (c_void_p * POLL_BATCH)()
        else:
            buf = (c_void_p * max)()
        try:
            if 0 <= ms <= _SLICE_MS:
                n = _ffi.gm_queue_poll(h, buf, max, ms)
            else:
                n = self._poll_sliced(buf, max, ms)
            if n <= 0:
                if n < 0:
                    raise from_code(n)
                return self._take_held(max) if self._held else []
            try:
                return decode_many(buf, n, _lookup)
            finally:
                _ffi.gm_events_free(buf, n)
        finally:
            if pooled:
                self._bufs.append(buf)

    def _poll_sliced(self, buf: Any, max: int, ms: int) -> int:
        # Waits in slices so that signals get through; returns 0 on a wake
        # (which ends a slice early) or when time is up.
        end = _deadline(ms)
        wakes = self._wakes
        while True:
            sl = _slice(end)
            t0 = _monotonic()
            n: int = _ffi.gm_queue_poll(self._h(), buf, max, sl)
            if n != 0:
                return n
            if sl == 0 or self._wakes != wakes or _monotonic() - t0 < sl / 1000:
                return 0  # time is up, or woken (a timed-out slice lasts its length)
            if self._held:
                return 0  # another thread's data() took events meanwhile: the caller looks again

    def flush(self, conn_or_ref: Any) -> int:
        """Gun's flush/1: drops the events waiting in this queue of a
        connection (a Connection) or of a stream (a ref, an int), and returns
        how many. A connection's EXIT stays. Dropped events are released as
        if taken, so the connection reads on."""
        h = self._h()
        if isinstance(conn_or_ref, BaseConnection):
            conn, ref = conn_or_ref, 0
            n = check(_ffi.gm_flush(h, conn._h(), 0))
        else:
            conn, ref = None, _ref(conn_or_ref)
            n = check(_ffi.gm_flush(h, None, ref))
        if self._held:
            with self._held_lock:
                keep: Deque[Event] = deque()
                for ev in self._held:
                    if (ev.conn is conn if conn is not None else ev.ref == ref) and ev.kind != EventKind.EXIT:
                        self._held_bytes -= _held_size(ev)
                        n += 1
                    else:
                        keep.append(ev)
                self._held = keep
                if not keep:
                    with _holding_lock:
                        _holding.discard(self)
        return n

    def _flush_library(self, ref: int) -> None:
        """Drops stream `ref`'s events from the library's queue only (no
        Python lock: safe from a finalizer)."""
        h = self._handle
        if h is not None:
            _ffi.gm_flush(h, None, ref)

    def __repr__(self) -> str:
        return f"<gunmetal.Queue fd={self._fd}{' closed' if self.closed else ''}>"


# ------------------------------------------------------------------ connections


def _take_event(out: c_void_p) -> Event:
    addr = out.value
    assert addr
    try:
        return decode(addr, _lookup)
    finally:
        _ffi.gm_event_free(addr)


def _info_dict(ev: Event) -> Dict[str, str]:
    return {k: v for k, v in ev.headers}


def _conn_info(ev: Event) -> Dict[str, Any]:
    """gm_info's pairs as a dict of str, and ``intermediaries``: Gun's list,
    one dict per proxy gone through, in order (type "connect" or "socks5",
    host, port as an int, transport, protocol); empty without proxies."""
    info: Dict[str, Any] = {}
    hops: List[Dict[str, Any]] = []
    for k, v in ev.headers:
        if k == "intermediary":
            t, host, port, transport, protocol = v.split(" ")
            hops.append({"type": t, "host": host, "port": int(port), "transport": transport, "protocol": protocol})
        else:
            info[k] = v
    info["intermediaries"] = hops
    return info


def destination_json(host: Any, port: Any, username: Optional[str], password: Optional[str],
                     transport: Optional[str], protocols: Optional[Sequence[Any]],
                     tls_opts: Optional[Mapping[str, Any]], tls_handshake_timeout: Optional[float]) -> bytes:
    """gun:connect's destination map as the JSON gm_connect takes (the keys
    given; the library checks the values and refuses what it does not know,
    naming it)."""
    if isinstance(host, bytes):
        host = host.decode("utf-8", "surrogateescape")
    if not isinstance(host, str):
        raise TypeError(f"host must be str, not {type(host).__name__}")
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"port must be an int, not {type(port).__name__}")
    d: Dict[str, Any] = {"host": host, "port": port}
    hs: Any = None
    if tls_handshake_timeout is not None:  # seconds here, Gun's milliseconds on the wire
        hs = "infinity" if tls_handshake_timeout == math.inf else max(1, timeout_ms(tls_handshake_timeout,
                                                                                     "tls_handshake_timeout"))
    for k, v in (("username", username), ("password", password), ("transport", transport),
                 ("protocols", protocols), ("tls_opts", tls_opts), ("tls_handshake_timeout", hs)):
        if v is not None:
            d[k] = list(v) if k == "protocols" and not isinstance(v, (str, bytes)) else v
    js = opts_json(d, "destination.")
    assert js is not None
    return js


def _has_close(frames: Union[WSMessage, Sequence[WSMessage]]) -> bool:
    if isinstance(frames, WSFrame):
        return frames.opcode == WSOpcode.CLOSE
    if isinstance(frames, (str, bytes, bytearray, memoryview)):
        return False
    return any(isinstance(f, WSFrame) and f.opcode == WSOpcode.CLOSE for f in frames)


def ws_frames(frames: Union[WSMessage, Sequence[WSMessage]]) -> List[WSFrame]:
    """str → text frame, bytes → binary frame, WSFrame as is; one or a list."""
    items: Sequence[Any] = (
        [frames] if isinstance(frames, (str, bytes, bytearray, memoryview, WSFrame)) else frames
    )
    out: List[WSFrame] = []
    for f in items:
        if isinstance(f, WSFrame):
            out.append(f)
        elif isinstance(f, str):
            out.append(WSFrame(WSOpcode.TEXT, f.encode("utf-8")))
        elif isinstance(f, (bytes, bytearray, memoryview)):
            out.append(WSFrame(WSOpcode.BINARY, bytes(f)))
        else:
            raise TypeError(f"a WebSocket frame must be str, bytes or WSFrame, not {type(f).__name__}")
    return out


class BaseConnection(Managed):
    """What the sync and asyncio connections share: the handle, its queue,
    requests, cancel/update_flow/shutdown/set_owner/info/stream_info/close."""

    _kind = "connection"
    queue: Queue

    def __init__(self, handle: int, queue: Queue, own_queue: bool, where: str) -> None:
        self._handle = handle
        self.queue = queue
        self._queues: List[Queue] = [queue] if own_queue else []
        if own_queue:
            queue._warn_unclosed = False
        self._where = where
        # For the argtypes-free hot path: the handle as ctypes' own argument
        # object (what c_void_p.from_param gives), which a call takes as is,
        # where a c_void_p would be converted again at each call.
        self._hv = c_void_p.from_param(handle)
        self._sync_sender: Optional[_Sender] = None
        # reply_to queues of streamed requests, for what data() holds
        self._reply_to: Dict[int, Queue] = {}
        _conns[handle] = self

    @classmethod
    def _open_handle(
        cls, host: Any, port: Any, owner: Optional[Queue], opts: Mapping[str, Any]
    ) -> Tuple[int, Queue, bool, str]:
        h = _cstr(host, "host")
        if isinstance(port, bool) or not isinstance(port, int):
            raise TypeError(f"port must be an int, not {type(port).__name__}")
        if not -(2**31) <= port < 2**31:
            raise InvalidArgument(_ffi.GM_EINVAL, f"port {port} out of range 1..65535")
        js = opts_json(py_defaults(opts))
        q, own = _owner_queue(owner)
        out = c_void_p()
        rc = _ffi.gm_open(q._h(), h, port, js, byref(out))
        if rc < 0:
            err = from_code(rc)
            if own:
                q.close()
            raise err
        assert out.value
        return out.value, q, own, f"{h.decode('utf-8', 'replace')}:{port}"

    @classmethod
    def _open_unix_handle(
        cls, path: Any, owner: Optional[Queue], opts: Mapping[str, Any]
    ) -> Tuple[int, Queue, bool, str]:
        p = _cstr(path, "path")
        js = opts_json(py_defaults(opts))
        q, own = _owner_queue(owner)
        out = c_void_p()
        rc = _ffi.gm_open_unix(q._h(), p, js, byref(out))
        if rc < 0:
            err = from_code(rc)
            if own:
                q.close()
            raise err
        assert out.value
        return out.value, q, own, f"unix:{p.decode('utf-8', 'replace')}"

    def _release(self, handle: int) -> None:
        s = self._sync_sender
        if s is not None:
            self._sync_sender = None
            if not s.wait(0):
                # A send still in progress (an interrupted data()): closing
                # the connection makes it return; the handle is freed after.
                _ffi.gm_close(handle)
                s.wait(5)
            s.stop()
        _ffi.gm_conn_free(handle)
        for q in self._queues:
            q.close()
        self._queues = []

    def _conn_error(self, rc: int, message: Optional[str] = None) -> Error:
        """The exception for status rc of a call on this connection: for
        GM_ECLOSED, with Gun's reason when the connection exited by itself
        (the EXIT event's, read from gm_info: the event stays queued)."""
        if message is None:
            message = errmsg()
        if rc != _ffi.GM_ECLOSED:
            return from_code(rc, message)
        reason = self._exit_reason()
        if reason is None:
            return Closed(rc, message)
        return closed_error(reason, self._where)

    def _check(self, rc: int) -> int:
        if rc < 0:
            raise self._conn_error(rc)
        return rc

    def _exit_reason(self) -> Optional[str]:
        h = self._handle
        if h is None:
            return None
        out = c_void_p()
        if _ffi.gm_info(h, byref(out)) != _ffi.GM_OK:
            return None
        info = _info_dict(_take_event(out))
        return info.get("reason") if info.get("state") == "closed" else None

    # ---- requests

    def _request(
        self,
        method: Any,
        path: Any,
        headers: HeadersIn,
        body: Any,
        stream: bool,
        timeout: Optional[float],
        flow: Optional[int],
        reply_to: Optional[Queue],
        content_handlers: Optional[bytes] = None,
        tunnel: Optional[int] = None,
    ) -> int:
        args = self._request_args(method, path, headers, body, stream, timeout, flow, reply_to, content_handlers,
                                  tunnel)
        ref = c_uint64()
        if args[6] is not None:
            rc = _ffi.gm_request_noconv(*args, byref(ref))
        else:
            hv, m, p, arr, nh, body, _, flags, opts = args
            buf = _Buf(body)
            try:
                rc = _ffi.gm_request(hv, m, p, arr, nh, buf.ptr, buf.len, flags, opts, byref(ref))
            finally:
                buf.release()
        if rc < 0:
            raise self._conn_error(rc)
        if reply_to is not None and stream:
            self._reply_to[ref.value] = reply_to
        return ref.value

    def _bare(self, method: bytes, path: Any) -> int:
        """_request for a request with no headers, body or options (a
        plain get(path) etc.): the same checks, results and errors, with
        the path's bytes cached and the ref buffer reused."""
        p = _paths.get(path) if type(path) is str else None
        if p is None or self._handle is None:
            return self._request(method, path, None, None, False, None, None, None)
        try:
            ref, out = _refbufs.pop()
        except IndexError:
            ref = c_uint64()
            out = byref(ref)
        rc = _ffi.gm_request_noconv(self._hv, method, p, None, _SIZE0P, None, _SIZE0P, 0, None, out)
        r: int = ref.value
        _refbufs.append((ref, out))
        if rc < 0:
            raise self._conn_error(rc)
        return r

    def _request_args(
        self,
        method: Any,
        path: Any,
        headers: HeadersIn,
        body: Any,
        stream: bool,
        timeout: Optional[float],
        flow: Optional[int],
        reply_to: Optional[Queue],
        content_handlers: Optional[bytes] = None,
        tunnel: Optional[int] = None,
    ) -> Tuple[Any, ...]:
        """The arguments of gm_request but the ref, checked and converted for
        the argtypes-free call: (conn, method, path, headers, n_headers, body,
        body_len, flags, opts). body_len is None when the body is a buffer
        other than bytes (for a _Buf, in the call)."""
        hv = self._hv
        if self._handle is None:
            self._h()  # raises Closed
        # The usual arguments take the first branch of each test: bytes or
        # ASCII str method and path, no headers or a list, no body or bytes.
        m = method if type(method) is bytes and b"\x00" not in method else _cstr(method, "method")
        if type(path) is str and path.isascii() and "\x00" not in path:
            p = path.encode("ascii")
            if len(p) <= _PATH_CACHED_MAX and len(_paths) < _PATHS_MAX:
                _paths[path] = p
        else:
            p = _cstr(path, "path")
        if headers:
            arr, n = c_headers(headers)
            nh = c_size_t(n)
        else:
            arr, nh = None, _SIZE0
        if stream and body is not None:
            raise InvalidArgument(_ffi.GM_EINVAL, "a streamed request (body sent with data()) takes no body")
        if timeout is None and reply_to is None and content_handlers is None and tunnel is None and (
                flow is None or (type(flow) is int and flow in _FLOW_OPTS)):
            opts = None if flow is None else _FLOW_OPTS[flow]  # read-only to the library: shared
        else:
            o = _ffi.gm_req_opts()
            o.size = ctypes.sizeof(_ffi.gm_req_opts)
            if timeout is not None:
                o.timeout_ms = max(1, timeout_ms(timeout))
            if flow is not None:
                if isinstance(flow, bool) or not isinstance(flow, int):
                    raise TypeError(f"flow must be an int, not {type(flow).__name__}")
                if not 0 < flow < 2**31:
                    raise InvalidArgument(_ffi.GM_EINVAL, f"flow must be a positive int, not {flow}")
                o.flow = flow
            if reply_to is not None:
                if not isinstance(reply_to, Queue):
                    raise TypeError(f"reply_to must be a gunmetal.Queue, not {type(reply_to).__name__}")
                o.reply_to = reply_to._h()
            if content_handlers is not None:
                o.content_handlers_json = content_handlers  # kept alive by o
            if tunnel is not None:
                o.tunnel = tunnel_ref(tunnel)
            opts = byref(o)
        if body is None:
            return (hv, m, p, arr, nh, None, _SIZE0, _REQ_STREAM if stream else 0, opts)
        if type(body) is bytes and body:
            return (hv, m, p, arr, nh, body, c_size_t(len(body)), 0, opts)
        if not isinstance(body, (str, bytes, bytearray, memoryview)):
            try:
                memoryview(body)
            except TypeError:
                raise TypeError(f"body must be bytes, str or a buffer, not {type(body).__name__}") from None
        return (hv, m, p, arr, nh, body, None, 0, opts)

    def _data(self, ref: int, data: Any, fin: bool) -> None:
        h = self._h()
        buf = _Buf(data, "data")
        try:
            rc = _ffi.gm_data(h, _ref(ref), buf.ptr, buf.len, 1 if fin else 0)
        finally:
            buf.release()
        if rc < 0:
            raise self._conn_error(rc)

    def _ws_upgrade(self, path: Any, headers: HeadersIn, ws_opts: Optional[Mapping[str, Any]],
                    reply_to: Optional[Queue] = None, tunnel: Optional[int] = None) -> int:
        h = self._h()
        p = _cstr(path, "path")
        arr, n = c_headers(headers)
        if tunnel is not None:  # the C ABI takes it in ws_opts, as Gun
            ws_opts = {**(ws_opts or {}), "tunnel": tunnel_ref(tunnel)}
        js = opts_json(ws_opts, "ws_opts.") if ws_opts else None
        ref = c_uint64()
        if reply_to is None:
            self._check(_ffi.gm_ws_upgrade(h, p, arr, n, js, byref(ref)))
        else:
            if not isinstance(reply_to, Queue):
                raise TypeError(f"reply_to must be a gunmetal.Queue, not {type(reply_to).__name__}")
            self._check(_ffi.gm_ws_upgrade_to(h, p, arr, n, js, reply_to._h(), byref(ref)))
        return ref.value

    def _ws_send(self, ref: int, frames: Any) -> None:
        job = self._ws_job(ref, frames)
        if job is not None:
            self._check(job())

    def _ws_job(self, ref: int, frames: Any) -> Optional[Callable[[], int]]:
        """A call of gm_ws_send for `frames` (None when there are none)."""
        h = self._h()
        r = _ref(ref)
        fs = ws_frames(frames)
        n = len(fs)
        if n == 0:
            return None
        arr = (_ffi.gm_ws_frame * n)()
        keep = []
        for i, f in enumerate(fs):
            c = arr[i]
            c.op = int(f.opcode)
            c.code = f.code
            if f.data:
                b = c_char_p(f.data)
                keep.append(b)
                c.data = ctypes.cast(b, c_void_p).value
                c.len = len(f.data)

        def job() -> int:
            rc: int = _ffi.gm_ws_send(h, r, arr, n)
            del keep[:]
            return rc

        return job

    def _ping(self, tunnel: Optional[int] = None) -> int:
        ref = c_uint64()
        if tunnel is None:
            self._check(_ffi.gm_ping(self._h(), byref(ref)))
        else:
            self._check(_ffi.gm_ping_tunnel(self._h(), tunnel_ref(tunnel), byref(ref)))
        return ref.value

    # ---- stream control

    def cancel(self, ref: int) -> None:
        """Cancels a stream (Gun's cancel): no more events for it. Unknown or
        finished streams are ignored."""
        self._check(_ffi.gm_cancel(self._h(), _ref(ref)))

    def update_flow(self, ref: int, n: int) -> None:
        """Adds n > 0 to a stream's flow (Gun's update_flow)."""
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"n must be an int, not {type(n).__name__}")
        if not 0 < n < 2**31:
            raise InvalidArgument(_ffi.GM_EINVAL, f"flow increment must be a positive int, not {n}")
        self._check(_ffi.gm_update_flow(self._h(), _ref(ref), n))

    def shutdown(self) -> None:
        """Closes gracefully (Gun's shutdown): streams in flight finish, new
        requests fail with "closing", EXIT "shutdown" follows. The object must
        still be closed (or collected) to release the handle."""
        self._check(_ffi.gm_shutdown(self._h()))

    def set_owner(self, queue: Queue) -> None:
        """Moves the connection to another queue (Gun's set_owner); events
        already queued stay where they are."""
        if not isinstance(queue, Queue):
            raise TypeError(f"queue must be a gunmetal.Queue, not {type(queue).__name__}")
        self._check(_ffi.gm_set_owner(self._h(), queue._h()))
        self.queue = queue

    def info(self) -> Dict[str, Any]:
        """Gun's info: state, protocol, transport, host, port, origin, and when
        connected the local and peer addresses (str values); origin_scheme,
        origin_host, origin_port: where requests go (the origin at the end
        of the tunnels when there are proxies); ``intermediaries``: Gun's
        list of the proxies gone through, as dicts (type "connect" or
        "socks5", host, port (int), transport, protocol)."""
        out = c_void_p()
        self._check(_ffi.gm_info(self._h(), byref(out)))
        return _conn_info(_take_event(out))

    def _connect(self, dest: bytes, headers: HeadersIn, timeout: Optional[float], flow: Optional[int],
                 tunnel: Optional[int] = None) -> int:
        """gm_connect: the CONNECT's ref."""
        h = self._h()
        arr, n = c_headers(headers) if headers else (None, 0)
        opts = None
        if timeout is not None or flow is not None or tunnel is not None:
            o = _ffi.gm_req_opts()
            o.size = ctypes.sizeof(_ffi.gm_req_opts)
            if timeout is not None:
                o.timeout_ms = max(1, timeout_ms(timeout))
            if flow is not None:
                o.flow = flow
            if tunnel is not None:
                o.tunnel = tunnel_ref(tunnel)
            opts = byref(o)
        ref = c_uint64()
        rc = _ffi.gm_connect(h, dest, arr, n, opts, byref(ref))
        if rc < 0:
            raise self._conn_error(rc)
        return ref.value

    def flush(self) -> int:
        """Drops this connection's events waiting in ``conn.queue`` (Gun's
        flush(ConnPid)); see :meth:`Queue.flush`."""
        self._h()
        return self.queue.flush(self)

    def cookies(self) -> List[Dict[str, Any]]:
        """Exports the cookie store (the ``cookie_store=True`` option): a list
        of dicts with Gun's gun_cookies keys (name, value, domain, path,
        host_only, secure_only, http_only, same_site, expiry_time), for
        :meth:`set_cookies` on another connection. BadState without it."""
        out = c_void_p()
        self._check(_ffi.gm_cookies_get(self._h(), byref(out)))
        ev = _take_event(out)
        cks: List[Dict[str, Any]] = json.loads(ev.data)
        return cks

    def set_cookies(self, cookies: Union[str, bytes, Sequence[Mapping[str, Any]]]) -> None:
        """Seeds the cookie store with what :meth:`cookies` returned (or its
        JSON); InvalidArgument names a bad cookie and field, and then none
        is taken."""
        if isinstance(cookies, (str, bytes)):
            js = cookies.encode() if isinstance(cookies, str) else cookies
        else:
            js = json.dumps([dict(c) for c in cookies]).encode()
        self._check(_ffi.gm_cookies_set(self._h(), _cstr(js, "cookies")))

    def stream_info(self, ref: int) -> Optional[Dict[str, str]]:
        """Gun's stream_info: ref, state, method, path, protocol, flow; None for
        an unknown or finished stream. The CONNECT stream of an HTTP/2
        tunnel that is up (Gun's tunnel map) adds tunnel_transport,
        tunnel_protocol, tunnel_origin_scheme, tunnel_origin_host and
        tunnel_origin_port; a stream inside a tunnel is found here too."""
        out = c_void_p()
        rc = _ffi.gm_stream_info(self._h(), _ref(ref), byref(out))
        if rc == _ffi.GM_ENOSTREAM:
            return None
        self._check(rc)
        return _info_dict(_take_event(out))

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        mod = "gunmetal.aio" if type(self).__module__.endswith("aio") else "gunmetal"
        return f"<{mod}.{type(self).__name__} {self._where}{state}>"


# byref(gm_req_opts) with only a flow, for the flows asyncio streams use
# (read-only to the library: shared by every request).
_FLOW_OPTS: Dict[int, Any] = {}
for _n in (1, 2, 4, 8, 16, 32, 64, 128):
    _o = _ffi.gm_req_opts()
    _o.size = ctypes.sizeof(_ffi.gm_req_opts)
    _o.flow = _n
    _FLOW_OPTS[_n] = byref(_o)
_SIZE0 = c_size_t(0)
_SIZE0P = c_size_t.from_param(0)  # the same as an argument object: for argtypes-free calls only
_REQ_STREAM = _ffi.GM_REQ_STREAM
# The request fast path (_bare): str paths already checked by
# _request_args (ASCII, no NUL) and their bytes; bounded (at most 1024
# paths of up to 512 bytes: about 1 MiB), so that a client requesting ever
# new or long paths stops adding and takes the checks each time.
_paths: Dict[str, bytes] = {}
_PATHS_MAX = 1024
_PATH_CACHED_MAX = 512
# (c_uint64, byref) pairs for gm_request's ref, reused instead of made for
# each request: list.pop() and append() are atomic, so no two threads ever
# hold the same pair.
_refbufs: List[Tuple[Any, Any]] = []


def _ref(ref: Any) -> int:
    if isinstance(ref, bool) or not isinstance(ref, int):
        raise TypeError(f"ref must be an int, not {type(ref).__name__}")
    if not 0 <= ref < 2**64:
        raise InvalidArgument(_ffi.GM_EINVAL, f"ref {ref} out of range")
    return ref


def tunnel_ref(tunnel: Any) -> int:
    """The ``tunnel=`` argument (Gun's req_opts tunnel) for gm_req_opts.tunnel
    / ws_opts tunnel: the int ref connect() returned. Checked here so that a
    wrong value is an exception and nothing goes on the wire; a ref that is
    no tunnel of the connection is the library's NoStream."""
    if isinstance(tunnel, bool) or not isinstance(tunnel, int):
        raise TypeError(f"tunnel must be the int ref that connect() returned, not {type(tunnel).__name__}")
    if not 0 < tunnel < 2**64:
        raise InvalidArgument(_ffi.GM_EINVAL, f"tunnel {tunnel} is no stream ref: connect() returns a positive int "
                              "(None: no tunnel)")
    return tunnel


def _owner_queue(owner: Optional[Queue]) -> Tuple[Queue, bool]:
    if owner is None:
        return Queue(), True
    if not isinstance(owner, Queue):
        raise TypeError(f"owner must be a gunmetal.Queue, not {type(owner).__name__}")
    return owner, False


class _Sender:
    """The thread that runs a sync connection's sends (gm_data, gm_ws_send),
    which block while the socket or the server's window is full: the
    caller's thread waits in Python meanwhile, taking the stream's events
    (a full-duplex server reads on only once its answer is read) and
    handling signals. Plain locks hand the job over (cheaper than
    Event/Condition): `_go` is released per job, `_fin` when it is done."""

    def __init__(self) -> None:
        self._go = _thread.allocate_lock()
        self._go.acquire()
        self._fin = _thread.allocate_lock()
        self._fin.acquire()
        self.busy = False  # a job was submitted and wait() has not seen it end
        self.job: Optional[Callable[[], int]] = None
        self.rc = 0
        self.msg = ""
        self._stop = False
        threading.Thread(target=self._run, name="gunmetal-send", daemon=True).start()

    def submit(self, job: Callable[[], int]) -> None:
        self.busy = True
        self.job = job
        self._go.release()

    def wait(self, timeout: float) -> bool:
        """True once no job is running (interruptible by signals)."""
        if not self.busy:
            return True
        if self._fin.acquire(True, timeout):
            self.busy = False
            return True
        return False

    def stop(self) -> None:
        self._stop = True
        try:
            self._go.release()
        except RuntimeError:  # released already: the thread sees _stop next
            pass

    def _run(self) -> None:
        while True:
            self._go.acquire()
            if self._stop:
                return
            job, self.job = self.job, None
            if job is None:
                continue
            try:
                rc = job()
                msg = errmsg() if rc < 0 else ""  # gm_errmsg is per thread: read it here
            except BaseException as e:  # ForkError in a forked child, say
                rc, msg = _ffi.GM_EINTERNAL, f"{type(e).__name__}: {e}"
            self.rc, self.msg = rc, msg
            del job
            self._fin.release()


class Connection(BaseConnection):
    """A Gun connection, driven synchronously. Make one with :func:`open` or
    :func:`open_unix`. Events go to ``conn.queue`` (its own queue unless an
    ``owner`` was given); the await methods take this connection's events
    out of it selectively, leaving the others in place.

    Every blocking call returns to Python at least every 0.1 s, so signals
    (Ctrl-C: KeyboardInterrupt) interrupt it."""

    #: The most bytes of events :meth:`data` and :meth:`ws_send` take out of
    #: the library's queue, while they wait, for the stream they send on (see
    #: :meth:`data`); past it they raise BadState instead of taking more.
    max_held: int = 64 << 20

    # ---- waiting

    def await_up(self, timeout: Optional[float] = None) -> str:
        """Waits for this connection's next UP and returns the protocol
        ("http", "http2", ...). Raises Timeout, or Closed when the
        connection exited: with Gun's reason (``e.reason``), as
        ConnectionRefused, ConnectTimeout or TLSError when it names one of
        those; the EXIT event stays in the queue."""
        proto = c_char_p()
        end = _deadline(timeout_ms(timeout))
        while True:
            sl = _slice(end)
            rc = _ffi.gm_await_up(self._h(), sl, byref(proto))
            if rc == _ffi.GM_ETIMEOUT and sl and (end is None or _monotonic() < end):
                continue
            if rc < 0:
                raise self._conn_error(rc)
            return (proto.value or b"").decode("utf-8", "replace")

    def connect(self, host: StrOrBytes, port: int, headers: HeadersIn = None, *,
                username: Optional[str] = None, password: Optional[str] = None,
                transport: Optional[str] = None, protocols: Optional[Sequence[Any]] = None,
                tls_opts: Optional[Mapping[str, Any]] = None, tls_handshake_timeout: Optional[float] = None,
                timeout: Optional[float] = None, tunnel: Optional[int] = None) -> int:
        """Gun's connect: asks the proxy this connection speaks to for a
        tunnel to host:port (a CONNECT) and returns its stream ref at once;
        :meth:`await_tunnel` waits for it. The keywords are Gun's
        destination keys: ``username``/``password`` (Basic
        proxy-authorization), ``transport`` ("tcp" or "tls": to the origin,
        inside the tunnel), ``protocols`` (default ["http"] on tcp,
        ["http2", "http"] on tls; ["raw"] for a byte stream), ``tls_opts``,
        ``tls_handshake_timeout`` (seconds, as every timeout parameter
        here). ``headers`` are added to the CONNECT; ``timeout`` (seconds)
        bounds the proxy's answer.

        HTTP/1.1 proxy: once the tunnel is up the connection is the
        origin's; requests need no ``tunnel=`` (as Gun), and a further
        connect() nests. HTTP/2 proxy: the tunnel is one stream of the
        connection; requests, ws_upgrade() and connect() reach the origin
        with ``tunnel=ref`` (without it they go to the proxy itself, Gun
        2.0's rule), and a raw tunnel's bytes go with ``data(ref, ...)`` and
        come as DATA events on ``ref``. ``tunnel`` here sends this CONNECT
        through such a tunnel (nested proxies)."""
        dest = destination_json(host, port, username, password, transport, protocols, tls_opts,
                                tls_handshake_timeout)
        return self._connect(dest, headers, timeout, None, tunnel)

    def await_tunnel(self, ref: Optional[int] = None, timeout: Optional[float] = None) -> str:
        """Waits for the tunnel of :meth:`connect`'s ``ref`` and returns the
        protocol spoken to the origin (Gun's gun_tunnel_up): the proxy's 2xx
        is taken, then the TUNNEL_UP. Another status raises TunnelRefused
        (``status``, ``headers``, ``body``: e.g. 407). ``ref`` None: the
        SOCKS tunnel of a connection opened with protocols=["socks"] (its
        TUNNEL_UP has no ref, Gun's undefined; the UP "socks" before it is
        taken too); a DOWN meanwhile raises Closed with its reason.
        ``timeout`` (seconds) bounds each wait."""
        if ref is None or ref == 0:
            while True:
                ev = self.await_(0, timeout)
                if ev.kind == EventKind.TUNNEL_UP:
                    return ev.protocol or ""
                if ev.kind == EventKind.DOWN:
                    raise closed_error(ev.reason or "closed", self._where)
                if ev.kind == EventKind.ERROR:
                    raise stream_error(ev.reason or "error")
        while True:
            ev = self.await_(ref, timeout)
            k = ev.kind
            if k == EventKind.RESPONSE:
                if 200 <= ev.status < 300:
                    continue
                body = b"" if ev.fin else self.await_body(ref, timeout).body
                raise TunnelRefused(_ffi.GM_ESTREAM, f"the proxy answered {ev.status} to CONNECT",
                                    ev.status, ev.headers, body)
            if k == EventKind.TUNNEL_UP:
                return ev.protocol or ""
            if k == EventKind.ERROR:
                raise stream_error(ev.reason or "error")

    def await_(self, ref: int, timeout: Optional[float] = None) -> Event:
        """Takes the next event of stream `ref` (Gun's await), or a
        connection-wide ERROR. Raises Timeout, or Closed when the connection
        has exited (see :meth:`await_up`)."""
        r = _ref(ref)
        end = _deadline(timeout_ms(timeout))
        out = c_void_p()
        while True:
            if _holding:
                ev = self._take_held(r)
                if ev is not None:
                    return ev
            sl = _slice(end)
            rc = _ffi.gm_await(self._h(), r, sl, byref(out))
            if rc == _ffi.GM_OK:
                return _take_event(out)
            if rc == _ffi.GM_ETIMEOUT and sl and (end is None or _monotonic() < end):
                continue
            if _holding:  # held meanwhile by a data() in another thread
                ev = self._take_held(r)
                if ev is not None:
                    return ev
            raise self._conn_error(rc)

    def _take_held(self, ref: int) -> Optional[Event]:
        with _holding_lock:
            qs = list(_holding)
        for q in qs:
            evs = q._take_held(1, self, ref)
            if evs:
                return evs[0]
        return None

    def await_body(self, ref: int, timeout: Optional[float] = None) -> Body:
        """Waits for the rest of the response of `ref` (Gun's await_body) and
        returns ``Body(status, headers, body, trailers)``; status 0 and no
        headers if the RESPONSE had been taken already. The timeout applies
        to each wait. Raises a StreamError subclass when the stream ends with
        an ERROR."""
        status, headers = 0, []
        chunks: List[bytes] = []
        while True:
            ev = self.await_(ref, timeout)
            k = ev.kind
            if k == EventKind.RESPONSE:
                status, headers = ev.status, ev.headers
                if ev.fin:
                    break
            elif k == EventKind.DATA:
                chunks.append(ev.data)
                if ev.fin:
                    break
            elif k == EventKind.TRAILERS:
                return Body(status, headers, b"".join(chunks), ev.headers)
            elif k == EventKind.ERROR:
                raise stream_error(ev.reason or "error")
            elif k == EventKind.SSE:
                raise stream_error("badarg: the body is delivered as SSE events (content_handlers gun_sse_h), "
                                   "not DATA: iterate them")
            # INFORM, PUSH: not part of the body (as Gun's await_body)
        return Body(status, headers, chunks[0] if len(chunks) == 1 else b"".join(chunks), [])

    def response(self, ref: int, timeout: Optional[float] = None) -> "Response[SyncMode]":
        """The :class:`Response` of stream `ref` (a request made with
        :meth:`get`, :meth:`request`, :meth:`headers`... or a pushed
        stream), once its head has arrived: ``status`` and ``headers`` are
        there; ``read()``, ``text()``, ``json()`` or ``for chunk in resp``
        take the body. ``timeout`` (seconds) bounds each wait, as in
        :meth:`await_body`; a stream that ends with an ERROR raises its
        StreamError. If the head was taken already (with :meth:`await_`),
        ``status`` is 0 and the headers are empty."""
        informs: List[Event] = []
        pushes: List[Event] = []
        while True:
            ev = self.await_(ref, timeout)
            k = ev.kind
            if k == EventKind.RESPONSE:
                return Response(self, ref, ev.status, None, ev.fin, informs, pushes, ev, None, timeout)
            if k == EventKind.DATA or k == EventKind.TRAILERS or k == EventKind.SSE:
                return Response(self, ref, 0, [], False, informs, pushes, None, None, timeout, ev)
            if k == EventKind.INFORM:
                informs.append(ev)
            elif k == EventKind.PUSH:
                pushes.append(ev)
            elif k == EventKind.ERROR:
                raise stream_error(ev.reason or "error")

    def fetch(self, method: StrOrBytes, path: StrOrBytes, headers: HeadersIn = None,
              body: Optional[BufferLike] = None, *, timeout: Optional[float] = None,
              tunnel: Optional[int] = None) -> "Response[SyncMode]":
        """Sends a whole request and returns its :class:`Response` once the
        head has arrived (:meth:`request` + :meth:`response`); the body is
        read with ``resp.read()``, ``resp.text()``, ``resp.json()`` or
        ``for chunk in resp``. ``timeout`` (seconds) bounds the whole stream,
        head and body (Gun's request timeout: past it the stream ends with
        StreamTimeout, a ``gunmetal.Timeout``), as in asyncio's
        ``request()``. ``tunnel``: see :meth:`request`. A response dropped
        unread is cancelled."""
        ref = self._request(method, path, headers, body, False, timeout, None, None, None, tunnel)
        # No bound on the waits: the stream's own timer ends them.
        return self.response(ref, None)

    def _send(self, ref: int, job: Callable[[], int]) -> None:
        """Runs a send in the sender thread; waits for it, taking stream
        `ref`'s events meanwhile. A send interrupted by an exception (a
        signal) goes on in the background: the next send waits for it and
        raises its error, if any."""
        s = self._sync_sender
        if s is None:
            s = self._sync_sender = _Sender()
        self._wait_sent(s, ref)
        s.submit(job)
        self._wait_sent(s, ref)

    def _wait_sent(self, s: _Sender, ref: int) -> None:
        if not s.wait(0.005):
            q = self.queue
            while True:
                took = self._hold_stream(q, ref)
                if s.wait(0.002 if took else 0.02):
                    break
        rc, s.rc = s.rc, 0
        if rc < 0:
            raise self._conn_error(rc, s.msg)

    def _hold_stream(self, q: Queue, ref: int) -> bool:
        """Takes the events of stream `ref` (its response) out of the
        library's queue into the Queue's held events, which opens the
        receive window and read budget they hold; True if it took any."""
        h = self._handle
        if h is None:
            return False
        out = c_void_p()
        took = False
        while True:
            if q._held_bytes >= self.max_held:
                raise BadState(
                    _ffi.GM_EBADSTATE,
                    f"{q._held_bytes >> 20} MiB of the response of stream {ref} arrived while its "
                    "body was being sent and has not been taken (Connection.max_held): take it with "
                    "await_(ref, 0) or poll() between data() calls; the piece being sent goes on "
                    "in the background",
                )
            if _ffi.gm_await(h, ref, 0, byref(out)) != _ffi.GM_OK:
                return took
            ev = _take_event(out)
            rq = self._reply_to.get(ref) if self._reply_to else None
            (rq or q)._hold(ev)
            took = True

    # ---- requests (Gun's request/headers/get/post/...)

    def request(
        self,
        method: StrOrBytes,
        path: StrOrBytes,
        headers: HeadersIn = None,
        body: Optional[BufferLike] = None,
        *,
        stream: bool = False,
        timeout: Optional[float] = None,
        flow: Optional[int] = None,
        reply_to: Optional[Queue] = None,
        content_handlers: Optional[Sequence[Any]] = None,
        tunnel: Optional[int] = None,
    ) -> int:
        """Sends a request and returns its stream ref. With ``stream=True``
        the body follows with :meth:`data`. ``timeout`` (seconds): past it
        the stream gets ERROR "timeout"; ``flow``: Gun's flow for this stream;
        ``reply_to``: the queue that gets this stream's events;
        ``content_handlers``: Gun's req_opts content_handlers, e.g.
        ``["gun_sse_h", "gun_data_h"]`` (an event stream then comes as
        EventKind.SSE events; see :meth:`sse`).

        ``tunnel`` (Gun's req_opts tunnel; every request method takes it):
        the ref :meth:`connect` returned for a tunnel through an HTTP/2
        proxy; the request goes to the origin through it. Without it, on a
        connection to an HTTP/2 proxy the request goes to the proxy itself
        (Gun 2.0). Through an HTTP/1.1 proxy (or SOCKS) the connection
        itself became the tunnel: no ``tunnel`` is needed (over HTTP/1.1
        the CONNECT's ref is accepted too, meaning the connection). A value that
        is not an int ref is TypeError/ValueError before anything is sent;
        an int that is no tunnel of this connection is NoStream."""
        return self._request(method, path, headers, body, stream, timeout, flow, reply_to,
                             _handlers_json(content_handlers), tunnel)

    def sse(self, path: StrOrBytes, headers: HeadersIn = None, *, timeout: Optional[float] = None,
            max_event_size: Optional[int] = None, tunnel: Optional[int] = None) -> "SSEStream":
        """GETs `path` as a server-sent event stream (content_handlers
        gun_sse_h for this request) and returns an iterator of
        :class:`SSEEvent`; ``timeout`` (seconds) bounds each wait for an
        event; ``tunnel`` as in :meth:`request`. See :class:`SSEStream`."""
        hs, js = _sse_request(headers, max_event_size)
        return SSEStream(self, self._request(b"GET", path, hs, None, False, None, None, None, js, tunnel), timeout)

    def headers(
        self,
        method: StrOrBytes,
        path: StrOrBytes,
        headers: HeadersIn = None,
        *,
        timeout: Optional[float] = None,
        flow: Optional[int] = None,
        reply_to: Optional[Queue] = None,
        tunnel: Optional[int] = None,
    ) -> int:
        """Gun's headers: starts a request whose body follows with
        :meth:`data` (on the returned ref, also in a tunnel); ``tunnel`` as
        in :meth:`request`."""
        return self._request(method, path, headers, None, True, timeout, flow, reply_to, None, tunnel)

    def get(self, path: StrOrBytes, headers: HeadersIn = None, *, timeout: Optional[float] = None,
            flow: Optional[int] = None, reply_to: Optional[Queue] = None,
            tunnel: Optional[int] = None) -> int:
        if headers is None and timeout is None and flow is None and reply_to is None and tunnel is None:
            return self._bare(b"GET", path)
        return self._request(b"GET", path, headers, None, False, timeout, flow, reply_to, None, tunnel)

    def head(self, path: StrOrBytes, headers: HeadersIn = None, *, timeout: Optional[float] = None,
             flow: Optional[int] = None, reply_to: Optional[Queue] = None,
             tunnel: Optional[int] = None) -> int:
        if headers is None and timeout is None and flow is None and reply_to is None and tunnel is None:
            return self._bare(b"HEAD", path)
        return self._request(b"HEAD", path, headers, None, False, timeout, flow, reply_to, None, tunnel)

    def options(self, path: StrOrBytes, headers: HeadersIn = None, *, timeout: Optional[float] = None,
                flow: Optional[int] = None, reply_to: Optional[Queue] = None,
                tunnel: Optional[int] = None) -> int:
        if headers is None and timeout is None and flow is None and reply_to is None and tunnel is None:
            return self._bare(b"OPTIONS", path)
        return self._request(b"OPTIONS", path, headers, None, False, timeout, flow, reply_to, None, tunnel)

    def delete(self, path: StrOrBytes, headers: HeadersIn = None, *, timeout: Optional[float] = None,
               flow: Optional[int] = None, reply_to: Optional[Queue] = None,
               tunnel: Optional[int] = None) -> int:
        if headers is None and timeout is None and flow is None and reply_to is None and tunnel is None:
            return self._bare(b"DELETE", path)
        return self._request(b"DELETE", path, headers, None, False, timeout, flow, reply_to, None, tunnel)

    def post(self, path: StrOrBytes, headers: HeadersIn = None, body: Optional[BufferLike] = None, *,
             timeout: Optional[float] = None, flow: Optional[int] = None,
             reply_to: Optional[Queue] = None, tunnel: Optional[int] = None) -> int:
        """POST. As in Gun, without a body the request is streamed: send
        the body with :meth:`data` (use ``body=b""`` for an empty one)."""
        return self._request(b"POST", path, headers, body, body is None, timeout, flow, reply_to, None,
                             tunnel)

    def put(self, path: StrOrBytes, headers: HeadersIn = None, body: Optional[BufferLike] = None, *,
            timeout: Optional[float] = None, flow: Optional[int] = None,
            reply_to: Optional[Queue] = None, tunnel: Optional[int] = None) -> int:
        """PUT; without a body the request is streamed (see :meth:`post`)."""
        return self._request(b"PUT", path, headers, body, body is None, timeout, flow, reply_to, None,
                             tunnel)

    def patch(self, path: StrOrBytes, headers: HeadersIn = None, body: Optional[BufferLike] = None, *,
              timeout: Optional[float] = None, flow: Optional[int] = None,
              reply_to: Optional[Queue] = None, tunnel: Optional[int] = None) -> int:
        """PATCH; without a body the request is streamed (see :meth:`post`)."""
        return self._request(b"PATCH", path, headers, body, body is None, timeout, flow, reply_to, None,
                             tunnel)

    def data(self, ref: int, data: BufferLike, fin: bool = False) -> None:
        """Sends a piece of a streamed request body; ``fin=True`` ends it.

        Blocks while the socket or the server's flow-control window is full.
        Meanwhile it takes the events of stream `ref` (its response) out of
        the library's queue and keeps them in ``conn.queue`` (they come out
        of :meth:`await_`, :meth:`await_body` and ``queue.poll()`` in order),
        so that a server answering as it reads is read and can read on: up to
        :attr:`max_held` bytes of them, then BadState. Take the response as
        it comes (``await_(ref, 0)`` between pieces) to keep memory flat.
        Interrupted (Ctrl-C), the piece goes on being sent in the
        background; the next data() waits for it first. Do not change a
        buffer passed to an interrupted data()."""
        r = _ref(ref)
        h = self._h()
        buf = _Buf(data, "data")
        f = 1 if fin else 0

        def job() -> int:
            try:
                rc: int = _ffi.gm_data(h, r, buf.ptr, buf.len, f)
                return rc
            finally:
                buf.release()

        self._send(r, job)
        if fin and self._reply_to:
            self._reply_to.pop(r, None)

    # ---- WebSocket and ping

    def ws_upgrade(self, path: StrOrBytes, headers: HeadersIn = None, *,
                   reply_to: Optional[Queue] = None, tunnel: Optional[int] = None, **ws_opts: Any) -> int:
        """Gun's ws_upgrade: returns the stream ref at once. Then comes an
        UPGRADE event (the 101's headers) and WS events, or an ordinary
        RESPONSE when the server says no. `ws_opts` (compress, protocols,
        keepalive, silence_pings, flow, closing_timeout, max_message_size,
        default_protocol) replace the connection's ws_opts when given, as in
        Gun. ``reply_to`` (Gun's ws_opts reply_to): the Queue that gets the
        stream's events; DOWN and EXIT stay on the connection's queue.
        ``tunnel`` (Gun's ws_opts tunnel): upgrade through that HTTP/2
        tunnel (see :meth:`request`)."""
        ref = self._ws_upgrade(path, headers, ws_opts, reply_to, tunnel)
        if reply_to is not None:
            self._reply_to[ref] = reply_to  # for the events ws_send takes while it blocks
        return ref

    def websocket(self, path: StrOrBytes, headers: HeadersIn = None, *, timeout: Optional[float] = None,
                  tunnel: Optional[int] = None, **ws_opts: Any) -> "WebSocket":
        """Upgrades to WebSocket (:meth:`ws_upgrade`) and returns a
        :class:`WebSocket` once the server agreed. ``timeout`` (seconds)
        bounds each wait (the upgrade, then each ``recv()``); ``tunnel`` as
        in :meth:`ws_upgrade`. A server that says no raises UpgradeRejected
        (its status, headers and body); a failed handshake a StreamError."""
        if "reply_to" in ws_opts:
            raise TypeError("websocket() takes no reply_to: use ws_upgrade(..., reply_to=queue)")
        ref = self.ws_upgrade(path, headers, tunnel=tunnel, **ws_opts)
        while True:
            ev = self.await_(ref, timeout)
            k = ev.kind
            if k == EventKind.UPGRADE:
                return WebSocket(self, ref, ev.headers, timeout)
            if k == EventKind.RESPONSE:
                body = b"" if ev.fin else Response(self, ref, ev.status, ev.headers, False, [], [], None, None,
                                                   timeout).read()
                raise UpgradeRejected(_ffi.GM_ESTREAM,
                                      f"the server answered {ev.status} instead of upgrading to WebSocket",
                                      ev.status, ev.headers, body)
            if k == EventKind.ERROR:
                raise stream_error(ev.reason or "error")

    def ws_send(self, ref: int, frames: Union[WSMessage, Sequence[WSMessage]]) -> None:
        """Gun's ws_send: one frame or a list, sent in order (str → text,
        bytes → binary; WSFrame.ping(payload) / WSFrame.pong(payload) with
        at most 125 bytes, WSFrame.close(code, reason)). Blocks (without the
        GIL) while the socket is slower than the caller. While it blocks it
        takes the stream's events, as :meth:`data` does."""
        job = self._ws_job(ref, frames)
        if job is not None:
            self._send(ref, job)
            if self._reply_to and ref in self._reply_to and _has_close(frames):
                del self._reply_to[ref]  # no send after a close frame: nothing left to take

    def ping(self, *, tunnel: Optional[int] = None) -> int:
        """Gun's ping (HTTP/2): returns the ref of the NOTIFY "ping_ack"
        event that comes when the server answers. ``tunnel=`` pings the
        HTTP/2 server at the end of that HTTP/2 tunnel (Gun's ping/2)."""
        return self._ping(tunnel)


def _handlers_json(handlers: Optional[Sequence[Any]]) -> Optional[bytes]:
    if handlers is None:
        return None
    if isinstance(handlers, (str, bytes)):
        raise TypeError("content_handlers must be a list, e.g. [\"gun_sse_h\", \"gun_data_h\"]")
    return json.dumps(list(handlers)).encode("utf-8")


def _sse_request(headers: HeadersIn, max_event_size: Optional[int]) -> Tuple[Any, bytes]:
    """The headers (accept: text/event-stream unless given) and the
    content_handlers of an SSE request: gun_sse_h alone, so that another
    body is dropped rather than read (the stream refuses it at its head)."""
    hs: List[Tuple[StrOrBytes, StrOrBytes]] = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
    if not any((k.decode() if isinstance(k, bytes) else k).lower() == "accept" for k, _ in hs):
        hs.append(("accept", "text/event-stream"))
    h: Any = "gun_sse_h" if max_event_size is None else ["gun_sse_h", {"max_event_size": max_event_size}]
    return hs, json.dumps([h]).encode("utf-8")


class SSEStream:
    """Server-sent events of one stream (:meth:`Connection.sse`):
    ``for ev in stream`` gives :class:`SSEEvent` objects until the body
    ends. ``status`` and ``headers`` are the response's once the first
    event was asked for. A response that is not text/event-stream raises
    StreamError "not_event_stream: ..." (the stream is cancelled); a stream
    that ends with an ERROR (an event over max_event_size: "limit_reached:
    ...") raises its StreamError. ``close()`` (or leaving a ``with`` block)
    cancels the stream if it is still running."""

    def __init__(self, conn: "Connection", ref: int, timeout: Optional[float]) -> None:
        self.conn = conn
        self.ref = ref
        self.timeout = timeout
        self.status = 0
        self.headers: List[Tuple[str, str]] = []
        self.done = False

    def __iter__(self) -> "SSEStream":
        return self

    def __next__(self) -> SSEEvent:
        while not self.done:
            ev = self.conn.await_(self.ref, self.timeout)
            out = _sse_step(self, ev)
            if out is not None:
                return out
        raise StopIteration

    def close(self) -> None:
        if not self.done:
            self.done = True
            try:
                self.conn.cancel(self.ref)
            except Closed:
                pass

    def __enter__(self) -> "SSEStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<gunmetal.SSEStream ref={self.ref} status={self.status}>"


def _sse_step(s: Any, ev: Event) -> Optional[SSEEvent]:
    """One event of an SSE stream (sync or asyncio): the SSEEvent to give,
    or None (s.done says whether the stream ended)."""
    k = ev.kind
    if k == EventKind.SSE:
        out = SSEEvent.from_event(ev)
        if out is None:
            s.done = True
        return out
    if k == EventKind.RESPONSE:
        s.status, s.headers = ev.status, ev.headers
        if ev.fin:
            s.done = True
        elif not is_event_stream(s.headers):
            ct = next((v for n, v in s.headers if n == "content-type"), None)
            s.close()
            raise stream_error(f"not_event_stream: the response (status {s.status}) has content-type {ct!r}, "
                               "not text/event-stream")
    elif k == EventKind.ERROR:
        s.done = True
        raise stream_error(ev.reason or "error")
    elif k in (EventKind.DATA, EventKind.TRAILERS) and (ev.fin or k == EventKind.TRAILERS):
        s.done = True
    return None


def ws_closed(frame: Optional[WSFrame], end: Optional[str]) -> ConnectionClosed:
    """The ConnectionClosed of a WebSocket that got close frame `frame`, or
    that ended without one for Gun's reason `end`."""
    if frame is not None:
        return ConnectionClosed(_ffi.GM_ECLOSED, "", frame.code, frame.reason)
    return ConnectionClosed(_ffi.GM_ECLOSED, "", 1006, end or "")


class WebSocket:
    """A WebSocket on a sync connection (``ws = conn.websocket(path)``):
    ``ws.send("text" | b"binary" | WSFrame | [...])``, ``ws.recv(timeout)``
    → str (a text frame), bytes (a binary one) or WSFrame (ping/pong unless
    silenced, the close frame), ``for message in ws``, ``ws.close(code,
    reason)``; a context manager that sends a close frame on exit if none
    was received. ``headers`` are the 101's (:class:`Headers`);
    ``protocol`` the negotiated subprotocol (or None). The close frame (the
    peer's, or the answer to ours) is given once, as the last message of
    the iteration; ``recv()`` then raises :class:`ConnectionClosed`
    (``close_code``, ``close_reason``). Gun's events stay available: this
    is ``ws_upgrade`` + ``await_`` on the stream ``ws.ref``."""

    def __init__(self, conn: "Connection", ref: int, headers: List[Tuple[str, str]],
                 timeout: Optional[float]) -> None:
        self._conn = conn
        self.ref = ref
        self.headers = Headers(headers)
        self.protocol: Optional[str] = self.headers.get("sec-websocket-protocol")
        self.timeout = timeout
        self.closed = False
        #: the close frame received once there was one
        self.close_frame: Optional[WSFrame] = None
        self._end: Optional[str] = None

    def send(self, frames: Union[WSMessage, Sequence[WSMessage]]) -> None:
        """Sends frames in order (str → text, bytes → binary, WSFrame)."""
        self._conn.ws_send(self.ref, frames)

    def recv(self, timeout: Optional[float] = None) -> Received:
        """The next message (see the class); ``timeout`` in seconds (None:
        the one given to ``websocket()``). An ERROR (max_message_size,
        badencoding...) raises its StreamError once, then ConnectionClosed."""
        if timeout is None:
            timeout = self.timeout
        while True:
            if self.closed:
                raise ws_closed(self.close_frame, self._end)
            try:
                ev = self._conn.await_(self.ref, timeout)
            except Closed as e:  # the connection ended under it
                self.closed, self._end = True, e.reason or str(e)
                raise ws_closed(None, self._end) from e
            if ev.kind == EventKind.WS:
                msg = ws_received(ev)
                if isinstance(msg, WSFrame) and msg.opcode == WSOpcode.CLOSE:
                    self.closed = True
                    self.close_frame = msg
                return msg
            if ev.kind == EventKind.ERROR:
                self.closed, self._end = True, ev.reason or "error"
                raise stream_error(self._end)

    def __iter__(self) -> "WebSocket":
        return self

    def __next__(self) -> Received:
        if self.closed:
            raise StopIteration
        try:
            return self.recv()
        except ConnectionClosed:
            raise StopIteration from None

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Sends a close frame (the peer's answer ends the iteration)."""
        self.send(WSFrame.close(code, reason))

    def __enter__(self) -> "WebSocket":
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.closed and not self._conn.closed:
            try:
                self.close()
            except Error:
                pass

    def __repr__(self) -> str:
        return f"<gunmetal.WebSocket ref={self.ref}{' closed' if self.closed else ''}>"


def open(host: StrOrBytes, port: int, *, owner: Optional[Queue] = None, **opts: Any) -> Connection:
    """Opens a connection to host:port (Gun's open) and returns at once; it
    connects in the background (use :meth:`Connection.await_up`).

    `opts` are Gun's option keys (transport, protocols, retry, retry_timeout,
    connect_timeout, tls_opts, http_opts, http2_opts, ws_opts, ...) with
    JSON-able values. Bad options raise :class:`OptionError` naming the key.
    `owner`: the Queue that gets the events (default: a queue of its own)."""
    handle, q, own, where = Connection._open_handle(host, port, owner, opts)
    return Connection(handle, q, own, where)


def open_unix(path: StrOrBytes, *, owner: Optional[Queue] = None, **opts: Any) -> Connection:
    """Opens a connection over the Unix socket at `path` (Gun's open_unix)."""
    handle, q, own, where = Connection._open_unix_handle(path, owner, opts)
    return Connection(handle, q, own, where)


def open_fd(fd: int, *, owner: Optional[Queue] = None, **opts: Any) -> Connection:
    """Adopts `fd`, a TCP or Unix stream socket the caller connected
    (gm_open_fd; gen_tcp's {fd, Fd}). On success the fd is gunmetal's and
    already closed: do not use nor close it (for a socket object, call
    ``sock.detach()`` and pass what it returns). On error it stays yours.
    No reconnect: retry other than 0 is refused."""
    handle, q, own, where = Connection._open_fd_handle(fd, owner, opts)
    return Connection(handle, q, own, where)


def tls_session_cache(max: int, lifetime: Optional[float]) -> None:
    """Bounds the process-wide TLS client session cache (gm_tls_session_cache;
    Erlang's ssl session_cache_client_max and session_lifetime): at most
    `max` sessions, each kept `lifetime` seconds (None: until evicted).
    Defaults: 1000 and 24 h. TLS connections whose tls_opts size no cache of
    their own share it, so a second open to a server resumes (``info()``'s
    ``tls_resumed``). Call it once, before opening connections."""
    if isinstance(max, bool) or not isinstance(max, int):
        raise TypeError(f"max must be an int, not {type(max).__name__}")
    if not 1 <= max < 2**31:
        raise InvalidArgument(_ffi.GM_EINVAL, f"max must be in 1..2**31-1, not {max}")
    if lifetime is None:
        ms = 0
    else:
        if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)) or not lifetime > 0 \
                or lifetime * 1000 >= 2**63:
            raise InvalidArgument(_ffi.GM_EINVAL, f"lifetime must be a positive number of seconds or None, not {lifetime!r}")
        ms = int(math.ceil(lifetime * 1000))
    check(_ffi.gm_tls_session_cache(max, ms))


def version() -> str:
    """The version of the loaded library ("0.1.0")."""
    v = _ffi.gm_version()
    return v.decode() if v else ""


def live_handles() -> int:
    """Handles the library has not released (test-only export; -1 if absent)."""
    f = _ffi.gm__live_handles
    return int(f()) if f is not None else -1


__all__ = [
    "Queue",
    "Connection",
    "BaseConnection",
    "Managed",
    "open",
    "open_unix",
    "open_fd",
    "version",
    "live_handles",
]
