"""gunmetal for asyncio.

Each connection has its own queue, watched with ``loop.add_reader(fd)``;
when it is readable the loop drains it in batches (``poll(256, 0)``, never
blocking) and hands each event to the stream it belongs to.  Nothing here
blocks the loop thread: the one library call that can block (sending a
request body with ``data``) runs in a worker thread of the connection.

::

    async with gunmetal.aio.open("127.0.0.1", 8080) as conn:
        await conn.up()
        resp = await conn.get("/")
        print(resp.status, resp.headers["content-type"], await resp.text())

Backpressure: every stream is opened with Gun's ``flow`` set to ``window``
DATA events (default 16), and flow is given back as the application consumes
the body, so a slow consumer slows the server instead of growing memory. On
HTTP/1.1 the socket stops being read; on HTTP/2 (as in Gun) the stream's
window stops growing, so at most its initial size (http2_opts
initial_stream_window_size, 8 MB by default) is buffered per stream.

Cancellation: cancelling a task that waits on a stream (a response head, a
body chunk, ``await_``...) cancels that stream in the library.

Bursts: ``get()``, ``request()`` and the other coroutines that return a
Response check their arguments at once but leave the library call to the
end of the loop's turn, when the requests of every task that ran go out
together (the library's writer then sends them in one go). The coroutines
that return a ref (``start_request``, ``headers``; every request method is
awaited), ``ws_upgrade``, ``ping``, ``shutdown`` and ``set_owner`` send the
waiting requests first.

Responses are :class:`gunmetal.Response` objects, the sync API's class:
here ``read()``, ``text()`` and ``json()`` are awaited.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import weakref
from collections import deque
from ctypes import byref, c_uint64
from typing import (
    Any,
    AsyncIterator,
    Deque,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
    overload,
)

from . import _ffi
from ._core import (
    _FLOW_OPTS,
    _PATH_CACHED_MAX,
    _SIZE0P,
    _sse_request,
    _sse_step,
    ws_closed,
    BaseConnection,
    BufferLike,
    HeadersIn,
    Queue,
    StrOrBytes,
    _ref,
    destination_json,
)
from ._errors import (
    BadState,
    Closed,
    ConnectionClosed,
    Error,
    NoStream,
    check,
    Timeout,
    TunnelRefused,
    UpgradeRejected,
    closed_error,
    from_code,
    stream_error,
)
from ._response import AsyncMode, Headers, Response
from ._events import Body, Event, EventKind, Header, Received, SSEEvent, WSFrame, WSMessage, WSOpcode, ws_received

__all__ = ["AsyncMode", "Connection", "Headers", "RawReader", "RawWriter", "Response", "SSEStream", "WebSocket", "open", "open_raw",
           "open_raw_unix", "open_unix"]

DEFAULT_WINDOW = 16
# The most paths per method and connection whose gm_request arguments are
# kept for the next request (Connection._bare_args): a few paths asked
# again and again are the usual case, and a connection stays small.
_BARE_MAX = 64

_UP = EventKind.UP
_DOWN = EventKind.DOWN
_EXIT = EventKind.EXIT
_INFORM = EventKind.INFORM
_RESPONSE = EventKind.RESPONSE
_DATA = EventKind.DATA
_TRAILERS = EventKind.TRAILERS
_PUSH = EventKind.PUSH
_ERROR = EventKind.ERROR
_UPGRADE = EventKind.UPGRADE
_WS = EventKind.WS
_SSE = EventKind.SSE
_SSE_BODY = "badarg: the body is delivered as SSE events (content_handlers gun_sse_h), not DATA: iterate them"
_NOTIFY = EventKind.NOTIFY
_TRACE = EventKind.TRACE
_TUNNEL_UP = EventKind.TUNNEL_UP
_WS_CLOSE = int(WSOpcode.CLOSE)
_Future = asyncio.Future


def _expire(fut: "asyncio.Future[None]", what: str) -> None:
    if not fut.done():
        fut.set_exception(Timeout(_ffi.GM_ETIMEOUT, f"timed out waiting for {what}"))


def _drain_weak(ref: "weakref.ReferenceType[Connection]") -> None:
    conn = ref()
    if conn is not None:
        conn._drain()


class _Stream:
    """The events of one stream, waiting for the application."""

    __slots__ = ("ref", "conn", "events", "waiter", "error", "consumed", "window", "ended")

    def __init__(self, conn: "Connection", ref: int, window: int) -> None:
        self.ref = ref
        self.conn = conn
        self.events: Deque[Event] = deque()
        self.waiter: Optional[asyncio.Future[None]] = None
        self.error: Optional[BaseException] = None
        self.consumed = 0
        self.window = window
        self.ended = False  # its last event has arrived

    def push(self, ev: Event) -> None:
        self.events.append(ev)
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    def fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def wait(self, timeout: Optional[float]) -> None:
        """Until an event is there (or the stream failed)."""
        while not self.events:
            if self.error is not None:
                raise self.error
            loop = self.conn._loop
            fut: asyncio.Future[None] = _Future(loop=loop)
            self.waiter = fut
            th = loop.call_later(timeout, _expire, fut, f"stream {self.ref}") if timeout is not None else None
            try:
                await fut
            except asyncio.CancelledError:
                if not self.ended:
                    self.conn._cancel_stream(self)
                raise
            finally:
                self.waiter = None
                if th is not None:
                    th.cancel()

    def pop(self) -> Event:
        ev = self.events.popleft()
        if self.ended and not self.events:
            self.conn._forget(self)
        if self.window and ((ev.kind == _DATA and not ev.fin) or ev.kind == _WS or (ev.kind == _SSE and not ev.fin)):
            self.consumed += 1
            if self.consumed * 2 >= self.window:
                n, self.consumed = self.consumed, 0
                self.conn._give_flow(self, n)
        return ev

    async def next(self, timeout: Optional[float]) -> Event:
        if not self.events:
            await self.wait(timeout)
        return self.pop()


class SSEStream:
    """Server-sent events of one stream (``await conn.sse(path)``):
    ``async for ev in stream`` gives :class:`~gunmetal.SSEEvent` objects
    until the body ends; ``status`` and ``headers`` are the response's. A
    response that is not text/event-stream raises StreamError
    "not_event_stream: ..." from ``sse()``; an ERROR (an event over
    max_event_size: "limit_reached: ...") raises its StreamError.
    ``close()`` (or leaving ``async with``) cancels the stream if it runs."""

    def __init__(self, conn: "Connection", stream: _Stream, timeout: Optional[float]) -> None:
        self._conn = conn
        self._stream = stream
        self.ref = stream.ref
        self.timeout = timeout
        self.status = 0
        self.headers: List[Header] = []
        self.done = False

    def __aiter__(self) -> AsyncIterator[SSEEvent]:
        return self

    async def __anext__(self) -> SSEEvent:
        st = self._stream
        while not self.done:
            ev = st.pop() if st.events else await st.next(self.timeout)
            out = _sse_step(self, ev)
            if out is not None:
                return out
        raise StopAsyncIteration

    def close(self) -> None:
        if not self.done:
            self.done = True
            self._conn._cancel_stream(self._stream)

    def __del__(self) -> None:
        if not self.done:
            try:
                self.close()
            except Exception:
                pass

    async def __aenter__(self) -> "SSEStream":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<gunmetal.aio.SSEStream ref={self.ref} status={self.status}>"


class WebSocket:
    """A WebSocket (``ws = await conn.ws_upgrade(path)``, or
    ``conn.websocket(path)``): ``await ws.send("text" | b"binary" | WSFrame
    | [...])``, ``await ws.recv()`` → str (a text frame), bytes (a binary
    one) or WSFrame (ping/pong unless silenced, the close frame), ``async
    for message in ws``, ``await ws.close(code, reason)``. ``headers`` are
    the 101's; ``protocol`` the negotiated subprotocol (or None). The close
    frame (the peer's, or the answer to ours) is given once, as the last
    message of the iteration; ``recv()`` then raises
    :class:`~gunmetal.ConnectionClosed` (``close_code``, ``close_reason``).
    The sync API's :class:`gunmetal.WebSocket` is the same, without await."""

    def __init__(self, conn: "Connection", stream: _Stream, headers: List[Header]) -> None:
        self._conn = conn
        self._stream = stream
        self.ref = stream.ref
        self.headers = Headers(headers)
        self.protocol: Optional[str] = self.headers.get("sec-websocket-protocol")
        self.closed = False
        #: the close frame received (code, reason) once there was one
        self.close_frame: Optional[WSFrame] = None
        self._end: Optional[str] = None  # Gun's reason when it ended without a close frame

    async def send(self, frames: Union[WSMessage, Sequence[WSMessage]]) -> None:
        await self._conn.ws_send(self.ref, frames)

    async def recv(self, timeout: Optional[float] = None) -> Received:
        """The next message: str (text), bytes (binary), WSFrame (ping,
        pong, close). Raises ConnectionClosed once the close frame has been
        delivered; an ERROR (max_message_size, badencoding...) raises its
        StreamError once, then ConnectionClosed."""
        while True:
            if self.closed:
                raise ws_closed(self.close_frame, self._end)
            try:
                ev = await self._stream.next(timeout)
            except Closed as e:  # the connection ended under it
                self.closed, self._end = True, e.reason or str(e)
                raise ws_closed(None, self._end) from e
            if ev.kind == _WS:
                msg = ws_received(ev)
                if isinstance(msg, WSFrame) and msg.opcode == WSOpcode.CLOSE:
                    self.closed = True
                    self.close_frame = msg
                return msg
            if ev.kind == _ERROR:
                self.closed, self._end = True, ev.reason or "error"
                raise stream_error(self._end)

    def __aiter__(self) -> AsyncIterator[Received]:
        return self

    async def __anext__(self) -> Received:
        if self.closed:
            raise StopAsyncIteration
        try:
            return await self.recv()
        except ConnectionClosed:
            raise StopAsyncIteration from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Sends a close frame (the peer's answer ends the iteration)."""
        await self.send(WSFrame.close(code, reason))

    def __repr__(self) -> str:
        return f"<gunmetal.aio.WebSocket ref={self.ref}{' closed' if self.closed else ''}>"


class Connection(BaseConnection):
    """A Gun connection driven by an asyncio loop. Make one with
    :func:`gunmetal.aio.open`. Use it from its loop's thread only."""

    def __init__(self, handle: int, queue: Queue, own_queue: bool, where: str,
                 loop: asyncio.AbstractEventLoop, window: int,
                 ws_opts: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(handle, queue, own_queue, where)
        self._ws_opts = dict(ws_opts or {})
        self._loop = loop
        self._q = queue
        self._window = window
        self._streams: Dict[int, _Stream] = {}
        # Requests made by get()/request()/... since the loop last ran
        # _send_pending: (stream, gm_request arguments). See _start.
        self._pending: List[Tuple[_Stream, Tuple[Any, ...]]] = []
        # method → {path: its gm_request arguments}, for requests without
        # headers, body or options (_start_bare); filled by _start_soon.
        self._bare_args: Dict[bytes, Dict[str, Tuple[Any, ...]]] = {}
        self._events: Deque[Event] = deque(maxlen=1024)
        self._event_waiter: Optional[asyncio.Future[None]] = None
        self._up_waiters: List[asyncio.Future[str]] = []
        # CONNECT streams: their 2xx RESPONSE (fin) is not their last event,
        # the TUNNEL_UP after it is (HTTP/2 tunnels: not even that).
        self._tunnels: Set[int] = set()
        # CONNECTs sent through an HTTP/2 tunnel (tunnel=): their TUNNEL_UP
        # leaves the connection's protocol alone.
        self._inner_connects: Set[int] = set()
        # The SOCKS tunnel (TUNNEL_UP without a ref): its protocol once up
        # (until the next DOWN), and who waits for it.
        self._socks_up: Optional[str] = None
        self._tunnel_waiters: List[asyncio.Future[str]] = []
        self._exit: asyncio.Future[str] = loop.create_future()
        self._sender: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._fd = queue.fileno()
        self._error: Optional[BaseException] = None
        self.protocol: Optional[str] = None
        #: "connecting", "up", "down" (reconnecting), "exited" or "closed"
        self.state = "connecting"
        #: the EXIT event's reason once the connection has exited
        self.exit_reason: Optional[str] = None
        # The loop holds a weak reference only, so that a connection nobody
        # holds is collected (and closed by __del__).
        loop.add_reader(self._fd, _drain_weak, weakref.ref(self))
        self._reading = True

    # ---- the drain loop

    def _drain(self) -> None:
        try:
            poll = self._q.poll
            for _ in range(16):  # then let the loop breathe; the fd is level-triggered
                evs = poll(256, 0)
                streams = self._streams
                for ev in evs:
                    ref = ev.ref
                    if ref and ev.kind != _TRACE:  # TRACE: the connection's, as in Gun
                        st = streams.get(ref)
                        if st is None:
                            continue  # a cancelled stream, or one we never knew of
                        k = ev.kind
                        if k == _DATA or k == _RESPONSE or k == _SSE:
                            if ev.fin and not (k == _RESPONSE and ref in self._tunnels and 200 <= ev.status < 300):
                                st.ended = True  # unregistered when the app takes it
                        elif k == _TUNNEL_UP:
                            self._tunnel_up(st, ev)
                        elif k == _TRAILERS or k == _ERROR or (k == _WS and ev.ws_opcode == _WS_CLOSE):
                            st.ended = True
                        elif k == _PUSH and ev.new_ref:
                            streams[ev.new_ref] = _Stream(self, ev.new_ref, 0)
                        st.events.append(ev)
                        w = st.waiter
                        if w is not None and not w.done():
                            w.set_result(None)
                    else:
                        self._conn_event(ev)
                        streams = self._streams  # _fail_all and set_owner replace it
                if len(evs) < 256:
                    break
        except BaseException as e:
            # Never swallowed: every waiter gets it, and so does the loop's
            # exception handler.
            self._stop_reading()
            self._fail_all(e)
            self._loop.call_exception_handler(
                {"message": "gunmetal.aio: draining the queue failed", "exception": e, "connection": self}
            )
            if not isinstance(e, Exception):
                raise

    def _tunnel_up(self, st: _Stream, ev: Event) -> None:
        ref = st.ref
        self._tunnels.discard(ref)
        inner = ref in self._inner_connects
        self._inner_connects.discard(ref)
        if self._h2_tunnel(ref):
            # A stream of the connection that stays: a raw tunnel's DATA and
            # the tunnel's end (ERROR) come on its ref.
            return
        st.ended = True
        if not inner:
            self.protocol = ev.protocol  # HTTP/1.1: requests go to the origin now

    def _h2_tunnel(self, ref: int) -> bool:
        """Whether ref is the CONNECT stream of an HTTP/2 tunnel that is up
        (gm_stream_info describes its tunnel; an HTTP/1.1 CONNECT's stream
        is over once its tunnel is up)."""
        if self._handle is None:
            return False
        try:
            si = self.stream_info(ref)
        except Error:  # closed meanwhile: no tunnel left to wait on
            return False
        return si is not None and "tunnel_protocol" in si

    def _conn_event(self, ev: Event) -> None:
        k = ev.kind
        if k == _UP:
            self.state = "up"
            self.protocol = ev.protocol
            waiters, self._up_waiters = self._up_waiters, []
            for w in waiters:
                if not w.done():
                    w.set_result(ev.protocol or "")
        elif k == _DOWN:
            self.state = "down"
            self._socks_up = None
            waiters, self._tunnel_waiters = self._tunnel_waiters, []
            for w in waiters:
                if not w.done():
                    w.set_exception(closed_error(ev.reason or "closed", self._where))
        elif k == _TUNNEL_UP:
            self.protocol = self._socks_up = ev.protocol or ""
            waiters, self._tunnel_waiters = self._tunnel_waiters, []
            for w in waiters:
                if not w.done():
                    w.set_result(self._socks_up)
        elif k == _EXIT:
            self.state = "exited"
            self.exit_reason = ev.reason or ""
            self._fail_all(closed_error(self.exit_reason))
        elif k == _ERROR:
            # A connection-wide error ends every wait on a stream, as in Gun's await.
            for st in list(self._streams.values()):
                st.push(ev)
        self._events.append(ev)
        ew = self._event_waiter
        if ew is not None and not ew.done():
            ew.set_result(None)

    def _fail_all(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        streams, self._streams = self._streams, {}
        for st in streams.values():
            st.fail(exc)
        pending, self._pending = self._pending, []
        for st, _ in pending:
            st.ended = True
            st.fail(exc)
        waiters, self._up_waiters = self._up_waiters, []
        waiters += self._tunnel_waiters
        self._tunnel_waiters = []
        for w in waiters:
            if not w.done():
                w.set_exception(exc)
        ew = self._event_waiter
        if ew is not None and not ew.done():
            ew.set_result(None)
        if not self._exit.done():
            self._exit.set_result(self.exit_reason if self.exit_reason is not None else "shutdown")

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            try:
                self._loop.remove_reader(self._fd)
            except Exception:  # the loop is closed, or this is not its thread
                pass

    def _release(self, handle: int) -> None:
        self._stop_reading()
        super()._release(handle)
        if self.state != "exited":
            self.state = "closed"
        if not self._loop.is_closed():  # (a closed loop cannot run callbacks any more)
            self._fail_all(Closed(_ffi.GM_ECLOSED, "connection is closed: close() was called"))
        if self._sender is not None:
            self._sender.shutdown(wait=False)
            self._sender = None

    # ---- streams

    def _register(self, ref: int, window: int) -> _Stream:
        st = _Stream(self, ref, window)
        if self._error is not None:
            st.fail(self._error)
        else:
            self._streams[ref] = st
        return st

    def _stream(self, ref: int) -> _Stream:
        st = self._streams.get(ref)
        if st is None:
            raise NoStream(_ffi.GM_ENOSTREAM, f"no stream {ref} waiting on this connection")
        return st

    def _forget(self, st: _Stream) -> None:
        if self._streams.get(st.ref) is st:
            del self._streams[st.ref]

    def _cancel_stream(self, st: _Stream) -> None:
        self._forget(st)
        st.events.clear()
        st.ended = True  # (a request not sent yet never will be)
        if st.ref and self._handle is not None:
            try:
                self.cancel(st.ref)
            except Closed:
                pass

    def _give_flow(self, st: _Stream, n: int) -> None:
        if st.ended or self._handle is None:
            return
        try:
            self.update_flow(st.ref, n)
        except (Closed, NoStream):
            pass

    def _start(self, method: Any, path: Any, headers: HeadersIn, body: Any, stream: bool,
               timeout: Optional[float], tunnel: Optional[int] = None) -> _Stream:
        """Sends a request now (for the calls that return its ref)."""
        if self._pending:
            self._send_pending()  # in call order
        w = self._window
        ref = self._request(method, path, headers, body, stream, timeout, w if w > 0 else None, None, None, tunnel)
        return self._register(ref, w)

    def _start_soon(self, method: Any, path: Any, headers: HeadersIn, body: Any,
                    timeout: Optional[float], tunnel: Optional[int] = None) -> _Stream:
        """A request for a coroutine that returns once its response comes:
        the arguments are checked now (errors raise here), the library call
        is made by _send_pending, once the tasks that are ready have run.
        Requests made together then reach the library together, which lets
        its writer send them in one go instead of waking for each: in W1 a
        gm_request costs about 2 us in a burst and 4.5 us spread between
        the tasks' other work."""
        w = self._window
        if (headers is None and body is None and timeout is None and tunnel is None and type(path) is str
                and path.isascii() and "\x00" not in path and type(method) is bytes
                and b"\x00" not in method and self._handle is not None and w in _FLOW_OPTS):
            # what _request_args gives for these arguments (sizes as argument
            # objects: _send_pending's call is argtypes-free)
            args: Tuple[Any, ...] = (self._hv, method, path.encode("ascii"), None, _SIZE0P, None, _SIZE0P, 0,
                                     _FLOW_OPTS[w])
            cache = self._bare_args.get(method)
            if cache is None:
                cache = self._bare_args[method] = {}
            if len(cache) < _BARE_MAX and len(path) <= _PATH_CACHED_MAX:
                cache[path] = args
        else:
            args = self._request_args(method, path, headers, body, False, timeout, w if w > 0 else None, None, None,
                                      tunnel)
            if args[6] is None:  # a buffer body (not bytes): sent while the caller holds it
                return self._start(method, path, headers, body, False, timeout, tunnel)
        st = _Stream(self, 0, w)
        if self._error is not None:
            st.fail(self._error)
            return st
        pending = self._pending
        pending.append((st, args))
        if len(pending) == 1:
            self._loop.call_soon(self._send_pending)
        return st

    def _start_bare(self, method: bytes, path: Any) -> _Stream:
        """_start_soon for a request without headers, body or options, with
        the arguments of an earlier one to the same path."""
        cache = self._bare_args.get(method)
        args = cache.get(path) if cache is not None and type(path) is str else None
        if args is None or self._handle is None or self._error is not None:
            return self._start_soon(method, path, None, None, None)
        st = _Stream(self, 0, self._window)
        pending = self._pending
        pending.append((st, args))
        if len(pending) == 1:
            self._loop.call_soon(self._send_pending)
        return st

    def _send_pending(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        if self._handle is None:
            exc = self._error or Closed(_ffi.GM_ECLOSED, "connection is closed: close() was called")
            for st, _ in pending:
                st.ended = True
                st.fail(exc)
            return
        ref = c_uint64()
        out = byref(ref)
        streams = self._streams
        i = 0
        gm_request = _ffi.gm_request_noconv
        try:
            for i, (st, args) in enumerate(pending):
                if st.ended:
                    continue  # cancelled before it was sent
                rc = gm_request(*args, out)
                if rc < 0:
                    st.ended = True
                    st.fail(from_code(rc))
                    continue
                st.ref = r = ref.value
                streams[r] = st
        except BaseException as e:
            for st, _ in pending[i:]:
                if not st.ref:
                    st.ended = True
                    st.fail(e)
            raise

    async def _head(self, st: _Stream) -> Response[AsyncMode]:
        informs: List[Event] = []
        pushes: List[Event] = []
        evs = st.events
        while True:
            if not evs:
                # st.wait(None), inline: this wait is on every request's path
                if st.error is not None:
                    raise st.error
                fut: asyncio.Future[None] = _Future(loop=self._loop)
                st.waiter = fut
                try:
                    await fut
                except asyncio.CancelledError:
                    if not st.ended:
                        self._cancel_stream(st)
                    raise
                finally:
                    st.waiter = None
                continue
            ev = evs[0]
            k = ev.kind
            if k == _RESPONSE:
                evs.popleft()  # st.pop(): a RESPONSE takes no flow
                if st.ended and not evs:
                    self._forget(st)
                return Response(self, st.ref, ev.status, None, ev.fin, informs, pushes, ev, st)
            if k == _DATA or k == _TRAILERS:
                # The head was taken (with await_): the body is all there is.
                return Response(self, st.ref, 0, [], False, informs, pushes, None, st)
            st.pop()
            if k == _INFORM:
                informs.append(ev)
            elif k == _PUSH:
                pushes.append(ev)
            elif k == _ERROR:
                raise stream_error(ev.reason or "error")

    # ---- connection state

    async def up(self, timeout: Optional[float] = None) -> str:
        """The protocol once the connection is up (at once if it is).
        Raises Timeout, or Closed when the connection exits first."""
        self._h()
        if self.state == "up" and self.protocol is not None:
            return self.protocol
        if self._error is not None:
            raise self._error
        fut: asyncio.Future[str] = self._loop.create_future()
        self._up_waiters.append(fut)
        if timeout is None:
            return await fut
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            if fut.done() and not fut.cancelled():
                raise  # the connection's own failure: ConnectTimeout is a TimeoutError too
            raise Timeout(_ffi.GM_ETIMEOUT, "timed out waiting for the connection to come up") from None

    await_up = up

    async def next_event(self, timeout: Optional[float] = None) -> Event:
        """The next connection event (UP, DOWN, EXIT, connection-wide ERROR,
        NOTIFY, TRACE: all of those, of streams too), oldest first; the last
        1024 are kept. Raises Closed once the
        EXIT has been taken (or after close())."""
        while not self._events:
            self._h()
            if self._error is not None:
                raise self._error
            fut: asyncio.Future[None] = self._loop.create_future()
            self._event_waiter = fut
            th = self._loop.call_later(timeout, _expire, fut, "a connection event") if timeout is not None else None
            try:
                await fut
            finally:
                self._event_waiter = None
                if th is not None:
                    th.cancel()
        return self._events.popleft()

    def flush(self, ref: Optional[int] = None) -> int:
        """Gun's flush/1: drops the events of this connection (``ref`` None)
        or of stream ``ref`` that have arrived and not been taken, here and
        in the library's queue, and returns how many. The EXIT stays. A
        stream whose last event was dropped is forgotten: waiting on it
        again raises NoStream."""
        h = self._h()
        n = 0
        if ref is None:
            n += check(_ffi.gm_flush(self._q._h(), h, 0))
            kept = deque((ev for ev in self._events if ev.kind == _EXIT), maxlen=self._events.maxlen)
            n += len(self._events) - len(kept)
            self._events = kept
            streams = list(self._streams.values())
        else:
            r = _ref(ref)
            n += check(_ffi.gm_flush(self._q._h(), None, r))
            st = self._streams.get(r)
            streams = [st] if st is not None else []
        for st in streams:
            n += len(st.events)
            if st.window:  # what pop() would have counted: the stream's flow goes on
                st.consumed += sum(1 for ev in st.events if (ev.kind == _DATA and not ev.fin) or ev.kind == _WS)
                if st.consumed * 2 >= st.window:
                    k, st.consumed = st.consumed, 0
                    self._give_flow(st, k)
            st.events.clear()
            if st.ended:
                self._forget(st)
                st.fail(NoStream(_ffi.GM_ENOSTREAM, f"the events of stream {st.ref} were flushed"))
        return n

    async def wait_closed(self) -> str:
        """Waits for the connection's end; returns the EXIT reason."""
        return await asyncio.shield(self._exit)

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> "Connection":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def shutdown(self) -> None:
        """Closes gracefully (Gun's shutdown): streams in flight, and requests
        made before, finish; new requests fail with "closing" (StreamClosed);
        EXIT "shutdown" follows."""
        self._send_pending()
        super().shutdown()

    def set_owner(self, queue: Queue) -> None:
        """Hands the connection to a (sync) Queue: its events go there from
        now on, and the streams still waiting here fail with BadState."""
        self._send_pending()
        super().set_owner(queue)
        streams, self._streams = self._streams, {}
        for st in streams.values():
            st.fail(BadState(_ffi.GM_EBADSTATE, "the connection was given to another queue (set_owner)"))

    # ---- requests

    async def request(self, method: StrOrBytes, path: StrOrBytes, headers: HeadersIn = None,
                      body: Optional[BufferLike] = None, *, timeout: Optional[float] = None,
                      tunnel: Optional[int] = None) -> Response[AsyncMode]:
        """Sends a request and returns the Response once its head arrives.
        ``timeout`` (seconds) bounds the whole stream (ERROR "timeout" →
        StreamTimeout).

        ``tunnel`` (Gun's req_opts tunnel; every request method takes it):
        the ref :meth:`connect` returned for a tunnel through an HTTP/2
        proxy; the request goes to the origin through it. Without it, on a
        connection to an HTTP/2 proxy the request goes to the proxy itself
        (Gun 2.0). Through an HTTP/1.1 proxy (or SOCKS) the connection
        itself became the tunnel: no ``tunnel`` is needed (over HTTP/1.1
        the CONNECT's ref is accepted too, meaning the connection). A value that
        is not an int ref is TypeError/ValueError before anything is sent;
        an int that is no tunnel of this connection is NoStream."""
        return await self._head(self._start_soon(method, path, headers, body, timeout, tunnel))

    async def fetch(self, method: StrOrBytes, path: StrOrBytes, headers: HeadersIn = None,
                    body: Optional[BufferLike] = None, *, timeout: Optional[float] = None,
                    tunnel: Optional[int] = None) -> Response[AsyncMode]:
        """:meth:`request` under the sync API's name: the Response once its
        head arrives (``await resp.read()`` / ``text()`` / ``json()``)."""
        return await self._head(self._start_soon(method, path, headers, body, timeout, tunnel))

    async def get(self, path: StrOrBytes, headers: HeadersIn = None, *,
                  timeout: Optional[float] = None, tunnel: Optional[int] = None) -> Response[AsyncMode]:
        if headers is None and timeout is None and tunnel is None:
            st = self._start_bare(b"GET", path)
            if st.error is None and not st.events:
                # _head's usual case, inline: the wait for a RESPONSE that
                # comes first (one coroutine less on every request's path).
                # Anything else is left to _head, the events still in place.
                fut: asyncio.Future[None] = _Future(loop=self._loop)
                st.waiter = fut
                try:
                    await fut
                except asyncio.CancelledError:
                    if not st.ended:
                        self._cancel_stream(st)
                    raise
                finally:
                    st.waiter = None
                evs = st.events
                if evs and evs[0].kind == _RESPONSE:
                    ev = evs.popleft()  # st.pop(): a RESPONSE takes no flow
                    if st.ended and not evs:
                        self._forget(st)
                    return Response(self, st.ref, ev.status, None, ev.fin, [], [], ev, st)
            return await self._head(st)
        return await self._head(self._start_soon(b"GET", path, headers, None, timeout, tunnel))

    async def head(self, path: StrOrBytes, headers: HeadersIn = None, *,
                   timeout: Optional[float] = None, tunnel: Optional[int] = None) -> Response[AsyncMode]:
        if headers is None and timeout is None and tunnel is None:
            return await self._head(self._start_bare(b"HEAD", path))
        return await self._head(self._start_soon(b"HEAD", path, headers, None, timeout, tunnel))

    async def options(self, path: StrOrBytes, headers: HeadersIn = None, *,
                      timeout: Optional[float] = None, tunnel: Optional[int] = None) -> Response[AsyncMode]:
        if headers is None and timeout is None and tunnel is None:
            return await self._head(self._start_bare(b"OPTIONS", path))
        return await self._head(self._start_soon(b"OPTIONS", path, headers, None, timeout, tunnel))

    async def delete(self, path: StrOrBytes, headers: HeadersIn = None, *,
                     timeout: Optional[float] = None, tunnel: Optional[int] = None) -> Response[AsyncMode]:
        if headers is None and timeout is None and tunnel is None:
            return await self._head(self._start_bare(b"DELETE", path))
        return await self._head(self._start_soon(b"DELETE", path, headers, None, timeout, tunnel))

    async def post(self, path: StrOrBytes, headers: HeadersIn = None, body: BufferLike = b"", *,
                   timeout: Optional[float] = None, tunnel: Optional[int] = None) -> Response[AsyncMode]:
        """POST with a body (to stream one, use headers() + data() + response())."""
        return await self._head(self._start_soon(b"POST", path, headers, body, timeout, tunnel))

    async def put(self, path: StrOrBytes, headers: HeadersIn = None, body: BufferLike = b"", *,
                  timeout: Optional[float] = None, tunnel: Optional[int] = None) -> Response[AsyncMode]:
        return await self._head(self._start_soon(b"PUT", path, headers, body, timeout, tunnel))

    async def patch(self, path: StrOrBytes, headers: HeadersIn = None, body: BufferLike = b"", *,
                    timeout: Optional[float] = None, tunnel: Optional[int] = None) -> Response[AsyncMode]:
        return await self._head(self._start_soon(b"PATCH", path, headers, body, timeout, tunnel))

    async def start_request(self, method: StrOrBytes, path: StrOrBytes, headers: HeadersIn = None,
                            body: Optional[BufferLike] = None, *, timeout: Optional[float] = None,
                            tunnel: Optional[int] = None) -> int:
        """Sends a whole request and returns its ref (Gun's request), for
        :meth:`response`, :meth:`await_` or :meth:`await_body`. A coroutine
        like every request method here; it returns without waiting for the
        server. ``tunnel`` as in :meth:`request`."""
        return self._start(method, path, headers, body, False, timeout, tunnel).ref

    async def headers(self, method: StrOrBytes, path: StrOrBytes, headers: HeadersIn = None, *,
                      timeout: Optional[float] = None, tunnel: Optional[int] = None) -> int:
        """Gun's headers: starts a request whose body follows with
        :meth:`data`; returns the ref (then ``await conn.response(ref)``).
        A coroutine like every request method here; it returns without
        waiting for the server. ``tunnel`` as in :meth:`request`."""
        return self._start(method, path, headers, None, True, timeout, tunnel).ref

    async def data(self, ref: int, data: BufferLike, fin: bool = False) -> None:
        """Sends a piece of a streamed body (in the connection's sender
        thread, in call order, since the socket may be slower than you)."""
        self._h()
        await self._in_sender(self._data, ref, data, fin)

    async def _in_sender(self, fn: Any, ref: int, *args: Any) -> None:
        if self._sender is None:
            self._sender = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="gunmetal-send")
        fut = self._loop.run_in_executor(self._sender, fn, ref, *args)
        try:
            await asyncio.shield(fut)
        except asyncio.CancelledError:
            st = self._streams.get(ref)
            if st is not None:
                self._cancel_stream(st)
            raise

    async def sse(self, path: StrOrBytes, headers: HeadersIn = None, *, timeout: Optional[float] = None,
                  max_event_size: Optional[int] = None, tunnel: Optional[int] = None) -> SSEStream:
        """GETs `path` as a server-sent event stream (content_handlers
        gun_sse_h for this request) and returns an :class:`SSEStream` once
        its head has arrived; ``timeout`` (seconds) bounds each wait;
        ``tunnel`` as in :meth:`request`."""
        hs, js = _sse_request(headers, max_event_size)
        if self._pending:
            self._send_pending()  # in call order
        w = self._window
        ref = self._request(b"GET", path, hs, None, False, None, w if w > 0 else None, None, js, tunnel)
        s = SSEStream(self, self._register(ref, w), timeout)
        while s.status == 0 and not s.done:  # the head (1xx and pushes are skipped)
            _sse_step(s, await s._stream.next(timeout))
        return s

    async def connect(self, host: StrOrBytes, port: int, headers: HeadersIn = None, *,
                      username: Optional[str] = None, password: Optional[str] = None,
                      transport: Optional[str] = None, protocols: Optional[Sequence[Any]] = None,
                      tls_opts: Optional[Mapping[str, Any]] = None, tls_handshake_timeout: Optional[float] = None,
                      timeout: Optional[float] = None, tunnel: Optional[int] = None) -> int:
        """Gun's connect: a CONNECT to the proxy for a tunnel to host:port;
        returns its ref at once (then ``await conn.await_tunnel(ref)``).
        Keywords as the sync :meth:`gunmetal.Connection.connect` (Gun's
        destination keys). Through an HTTP/2 proxy the tunnel is a stream:
        requests, ws_upgrade() and connect() name it with ``tunnel=ref``
        (without it they go to the proxy itself); a raw tunnel's bytes go
        with ``data(ref, ...)`` and come as DATA events (``await_(ref)``).
        ``tunnel`` here: this CONNECT goes through that tunnel (nested)."""
        dest = destination_json(host, port, username, password, transport, protocols, tls_opts,
                                tls_handshake_timeout)
        if self._pending:
            self._send_pending()  # in call order
        w = self._window
        ref = self._connect(dest, headers, timeout, w if w > 0 else None, tunnel)
        self._tunnels.add(ref)
        if tunnel is not None:
            self._inner_connects.add(ref)
        self._register(ref, w)
        return ref

    async def await_tunnel(self, ref: Optional[int] = None, timeout: Optional[float] = None) -> str:
        """The protocol spoken to the origin once the tunnel of
        :meth:`connect`'s ``ref`` is up (Gun's gun_tunnel_up). A status
        other than 2xx raises TunnelRefused (``status``, ``headers``,
        ``body``). ``ref`` None: the SOCKS tunnel of a connection opened
        with protocols=["socks"] (a DOWN meanwhile raises Closed)."""
        if ref is None or ref == 0:
            self._h()
            if self._socks_up is not None:
                return self._socks_up
            if self._error is not None:
                raise self._error
            fut: asyncio.Future[str] = self._loop.create_future()
            self._tunnel_waiters.append(fut)
            if timeout is None:
                return await fut
            try:
                return await asyncio.wait_for(fut, timeout)
            except asyncio.TimeoutError:
                if fut.done() and not fut.cancelled():
                    raise
                raise Timeout(_ffi.GM_ETIMEOUT, "timed out waiting for the SOCKS tunnel") from None
        st = self._stream(ref)
        while True:
            ev = await st.next(timeout)
            k = ev.kind
            if k == _RESPONSE:
                if 200 <= ev.status < 300:
                    continue
                body = b""
                if not ev.fin:
                    resp: Response[AsyncMode] = Response(self, st.ref, ev.status, ev.headers, False, [], [], None, st)
                    body = await resp.read()
                raise TunnelRefused(_ffi.GM_ESTREAM, f"the proxy answered {ev.status} to CONNECT",
                                    ev.status, ev.headers, body)
            if k == _TUNNEL_UP:
                return ev.protocol or ""
            if k == _ERROR:
                raise stream_error(ev.reason or "error")

    async def response(self, ref: int) -> Response[AsyncMode]:
        """The Response of a stream started with :meth:`headers` (or a pushed one)."""
        return await self._head(self._stream(ref))

    # ---- Gun's await / await_body

    async def await_(self, ref: int, timeout: Optional[float] = None) -> Event:
        """The next event of stream `ref` (Gun's await)."""
        st = self._streams.get(ref)
        if st is None:
            raise NoStream(_ffi.GM_ENOSTREAM, f"no stream {ref} waiting on this connection")
        return await st.next(timeout)

    async def await_body(self, ref: int, timeout: Optional[float] = None) -> Body:
        """The rest of stream `ref` as Body(status, headers, body, trailers)."""
        st = self._stream(ref)
        status, headers = 0, []
        chunks: List[bytes] = []
        while True:
            ev = await st.next(timeout)
            k = ev.kind
            if k == _RESPONSE:
                status, headers = ev.status, ev.headers
                if ev.fin:
                    break
            elif k == _DATA:
                chunks.append(ev.data)
                if ev.fin:
                    break
            elif k == _TRAILERS:
                return Body(status, headers, b"".join(chunks), ev.headers)
            elif k == _ERROR:
                raise stream_error(ev.reason or "error")
            elif k == _SSE:
                raise stream_error(_SSE_BODY)
        return Body(status, headers, b"".join(chunks), [])

    # ---- WebSocket and ping

    @overload
    async def ws_upgrade(self, path: StrOrBytes, headers: HeadersIn = None, *,
                         timeout: Optional[float] = None, reply_to: None = None,
                         tunnel: Optional[int] = None, **ws_opts: Any) -> WebSocket: ...

    @overload
    async def ws_upgrade(self, path: StrOrBytes, headers: HeadersIn = None, *,
                         timeout: Optional[float] = None, reply_to: Queue,
                         tunnel: Optional[int] = None, **ws_opts: Any) -> int: ...

    async def ws_upgrade(self, path: StrOrBytes, headers: HeadersIn = None, *,
                         timeout: Optional[float] = None, reply_to: Optional[Queue] = None,
                         tunnel: Optional[int] = None, **ws_opts: Any) -> Union[WebSocket, int]:
        """Upgrades to WebSocket (Gun's ws_upgrade) and returns the WebSocket
        once the server agreed. `ws_opts` (compress, protocols, keepalive,
        silence_pings, closing_timeout, max_message_size, default_protocol)
        are added to the connection's ws_opts; the stream's flow is the
        connection's window. A server that says no raises UpgradeRejected
        (with its status, headers and body); a failed handshake a
        StreamError. With ``reply_to`` (Gun's ws_opts reply_to, a Queue)
        the stream's events (UPGRADE, WS, ERROR or the refusing RESPONSE) go
        to that queue and the stream ref is returned at once; send with
        ws_send(ref, ...). Its flow is the ws_opts' only (the connection's
        window is not applied: this connection does not see the events).
        ``tunnel`` (Gun's ws_opts tunnel): upgrade through that HTTP/2
        tunnel (see :meth:`request`)."""
        opts = dict(self._ws_opts)
        opts.update(ws_opts)
        if reply_to is not None:
            self._send_pending()
            return self._ws_upgrade(path, headers, opts, reply_to, tunnel)
        if self._window > 0:
            opts.setdefault("flow", self._window)
        self._send_pending()  # in call order
        ref = self._ws_upgrade(path, headers, opts, None, tunnel)
        st = self._register(ref, int(opts.get("flow") or 0) if self._window > 0 else 0)
        while True:
            ev = await st.next(timeout)
            k = ev.kind
            if k == _UPGRADE:
                return WebSocket(self, st, ev.headers)
            if k == _RESPONSE:
                body = b""
                if not ev.fin:
                    resp: Response[AsyncMode] = Response(self, st.ref, ev.status, ev.headers, False, [], [], None, st)
                    body = await resp.read()
                raise UpgradeRejected(
                    _ffi.GM_ESTREAM,
                    f"the server answered {ev.status} instead of upgrading to WebSocket",
                    ev.status, ev.headers, body,
                )
            if k == _ERROR:
                raise stream_error(ev.reason or "error")

    async def websocket(self, path: StrOrBytes, headers: HeadersIn = None, *,
                        timeout: Optional[float] = None, tunnel: Optional[int] = None,
                        **ws_opts: Any) -> WebSocket:
        """:meth:`ws_upgrade` under the sync API's name: the WebSocket once
        the server agreed."""
        if "reply_to" in ws_opts:
            raise TypeError("websocket() takes no reply_to: use ws_upgrade(..., reply_to=queue)")
        ws = await self.ws_upgrade(path, headers, timeout=timeout, tunnel=tunnel, **ws_opts)
        assert isinstance(ws, WebSocket)
        return ws

    async def ws_send(self, ref: int, frames: Union[WSMessage, Sequence[WSMessage]]) -> None:
        """Sends WebSocket frames (in the connection's sender thread, in call
        order: the socket may be slower than you)."""
        self._h()
        await self._in_sender(self._ws_send, ref, frames)

    async def ping(self, timeout: Optional[float] = None, *, tunnel: Optional[int] = None) -> None:
        """Gun's ping (HTTP/2): returns when the server has acknowledged it.
        ``tunnel=`` pings the HTTP/2 server at the end of that HTTP/2 tunnel."""
        self._send_pending()
        ref = self._ping(tunnel)
        st = self._register(ref, 0)
        try:
            while True:
                ev = await st.next(timeout)
                if ev.kind == _NOTIFY and ev.reason == "ping_ack":
                    return
        finally:
            self._forget(st)


def _loop() -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError("gunmetal.aio.open must be called from a running asyncio loop") from None


def open(host: StrOrBytes, port: int, *, window: int = DEFAULT_WINDOW, **opts: Any) -> Connection:
    """Opens a connection (Gun's open) bound to the running loop; returns at
    once (``await conn.up()`` waits for it). `opts` are Gun's option keys.
    `window`: the flow (DATA events) each stream may have unread; 0 turns
    backpressure off."""
    loop = _loop()
    _check_window(window)
    handle, q, own, where = Connection._open_handle(host, port, None, opts)
    return Connection(handle, q, own, where, loop, window, opts.get("ws_opts"))


def open_unix(path: StrOrBytes, *, window: int = DEFAULT_WINDOW, **opts: Any) -> Connection:
    """As :func:`open`, over a Unix socket."""
    loop = _loop()
    _check_window(window)
    handle, q, own, where = Connection._open_unix_handle(path, None, opts)
    return Connection(handle, q, own, where, loop, window, opts.get("ws_opts"))


def _check_window(window: Any) -> None:
    if isinstance(window, bool) or not isinstance(window, int):
        raise TypeError(f"window must be an int, not {type(window).__name__}")
    if window < 0:
        raise ValueError("window must be >= 0")


# Raw byte streams (Gun's raw protocol) in asyncio's streams shape.
from .aio_raw import RawReader, RawWriter, open_raw, open_raw_unix  # noqa: E402
