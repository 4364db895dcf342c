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
        print(resp.status, await resp.read())

Backpressure: every stream is opened with Gun's ``flow`` set to ``window``
DATA events (default 16), and flow is given back as the application consumes
the body, so a slow consumer slows the server instead of growing memory. On
HTTP/1.1 the socket stops being read; on HTTP/2 (as in Gun) the stream's
window stops growing, so at most its initial size (http2_opts
initial_stream_window_size, 8 MB by default) is buffered per stream.

Cancellation: cancelling a task that waits on a stream (a response head, a
body chunk, ``await_``...) cancels that stream in the library.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import weakref
from collections import deque
from typing import (
    Any,
    AsyncIterator,
    Deque,
    Dict,
    List,
    Optional,
    Sequence,
    Union,
)

from . import _ffi
from ._core import (
    BaseConnection,
    BufferLike,
    HeadersIn,
    Queue,
    StrOrBytes,
)
from ._errors import BadState, Closed, NoStream, Timeout, UpgradeRejected, stream_error
from ._events import Body, Event, EventKind, Header, WSFrame, WSMessage, WSOpcode

__all__ = ["Connection", "Response", "WebSocket", "open", "open_unix"]

DEFAULT_WINDOW = 16

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
_NOTIFY = EventKind.NOTIFY
_WS_CLOSE = int(WSOpcode.CLOSE)


def _expire(fut: "asyncio.Future[None]", what: str) -> None:
    if not fut.done():
        fut.set_exception(Timeout(_ffi.GM_ETIMEOUT, f"timed out waiting for {what}"))


def _drain_weak(ref: "weakref.ReferenceType[Connection]") -> None:
    conn = ref()
    if conn is not None:
        conn._drain()


def _ends(ev: Event) -> bool:
    k = ev.kind
    if k == _DATA or k == _RESPONSE:
        return ev.fin
    if k == _WS:
        return ev.ws_opcode == _WS_CLOSE
    return k == _TRAILERS or k == _ERROR


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
            fut: asyncio.Future[None] = loop.create_future()
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
        k = ev.kind
        if self.window and ((k == _DATA and not ev.fin) or k == _WS):
            self.consumed += 1
            if self.consumed * 2 >= self.window:
                n, self.consumed = self.consumed, 0
                self.conn._give_flow(self, n)
        return ev

    async def next(self, timeout: Optional[float]) -> Event:
        if not self.events:
            await self.wait(timeout)
        return self.pop()


class Response:
    """A response: ``status`` and ``headers`` are there when it is returned;
    the body comes with ``async for chunk in resp`` or ``await resp.read()``.
    ``trailers`` is filled at the end; ``informs`` holds the 1xx responses
    (status, headers) that came first, ``pushes`` the PUSH events."""

    def __init__(self, conn: "Connection", stream: _Stream, status: int, headers: List[Header],
                 fin: bool, informs: List[Event], pushes: List[Event]) -> None:
        self._conn = conn
        self._stream = stream
        self.ref = stream.ref
        self.status = status
        self.headers = headers
        self.trailers: List[Header] = []
        self.informs = informs
        self.pushes = pushes
        self.done = fin

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The first value of header `name` (case-insensitive)."""
        n = name.lower()
        for k, v in self.headers:
            if k == n:
                return v
        return default

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        st = self._stream
        while not self.done:
            ev = st.pop() if st.events else await st.next(None)
            k = ev.kind
            if k == _DATA:
                if ev.fin:
                    self.done = True
                if ev.data:
                    return ev.data
            elif k == _TRAILERS:
                self.trailers = ev.headers
                self.done = True
            elif k == _ERROR:
                self.done = True
                raise stream_error(ev.reason or "error")
            elif k == _PUSH:
                self.pushes.append(ev)
        raise StopAsyncIteration

    async def read(self) -> bytes:
        """The rest of the body."""
        chunks: List[bytes] = []
        st = self._stream
        while not self.done:
            if not st.events:
                await st.wait(None)
            ev = st.pop()
            k = ev.kind
            if k == _DATA:
                if ev.fin:
                    self.done = True
                if ev.data:
                    chunks.append(ev.data)
            elif k == _TRAILERS:
                self.trailers = ev.headers
                self.done = True
            elif k == _ERROR:
                self.done = True
                raise stream_error(ev.reason or "error")
            elif k == _PUSH:
                self.pushes.append(ev)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def cancel(self) -> None:
        """Cancels the stream if its body has not all arrived."""
        if not self.done:
            self.done = True
            self._conn._cancel_stream(self._stream)

    def __del__(self) -> None:
        if not self.done:
            try:
                self.cancel()
            except Exception:
                pass

    async def __aenter__(self) -> "Response":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cancel()

    def __repr__(self) -> str:
        return f"<gunmetal.aio.Response ref={self.ref} status={self.status}>"


class WebSocket:
    """A WebSocket (``ws = await conn.ws_upgrade(path)``):
    ``await ws.send("text" | b"binary" | WSFrame | [...])``,
    ``await ws.recv()`` → WSFrame, ``async for frame in ws``,
    ``await ws.close(code, reason)``. ``headers`` are the 101's;
    ``protocol`` the negotiated subprotocol (or None). Iteration ends after
    the close frame (the peer's, or the answer to ours)."""

    def __init__(self, conn: "Connection", stream: _Stream, headers: List[Header]) -> None:
        self._conn = conn
        self._stream = stream
        self.ref = stream.ref
        self.headers = headers
        self.protocol: Optional[str] = next(
            (v for k, v in headers if k == "sec-websocket-protocol"), None)
        self.closed = False
        #: the close frame received (code, reason) once there was one
        self.close_frame: Optional[WSFrame] = None

    async def send(self, frames: Union[WSMessage, Sequence[WSMessage]]) -> None:
        await self._conn.ws_send(self.ref, frames)

    async def recv(self, timeout: Optional[float] = None) -> WSFrame:
        """The next frame (text, binary, ping/pong unless silenced, close).
        Raises Closed once the close frame has been received."""
        while True:
            if self.closed:
                raise Closed(_ffi.GM_ECLOSED, "the WebSocket is closed")
            ev = await self._stream.next(timeout)
            if ev.kind == _WS:
                frame = WSFrame(WSOpcode(ev.ws_opcode), ev.data, ev.status)
                if frame.opcode == WSOpcode.CLOSE:
                    self.closed = True
                    self.close_frame = frame
                return frame
            if ev.kind == _ERROR:
                self.closed = True
                raise stream_error(ev.reason or "error")

    def __aiter__(self) -> AsyncIterator[WSFrame]:
        return self

    async def __anext__(self) -> WSFrame:
        if self.closed:
            raise StopAsyncIteration
        try:
            frame = await self.recv()
        except Closed:
            raise StopAsyncIteration from None
        return frame

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
        self._events: Deque[Event] = deque(maxlen=1024)
        self._event_waiter: Optional[asyncio.Future[None]] = None
        self._up_waiters: List[asyncio.Future[str]] = []
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
                for ev in evs:
                    if ev.ref:
                        st = self._streams.get(ev.ref)
                        if st is not None:
                            if _ends(ev):
                                st.ended = True  # unregistered when the app takes it
                            elif ev.kind == _PUSH and ev.new_ref:
                                self._streams[ev.new_ref] = _Stream(self, ev.new_ref, 0)
                            st.push(ev)
                        # else: a cancelled stream, or one we never knew of
                    else:
                        self._conn_event(ev)
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
        elif k == _EXIT:
            self.state = "exited"
            self.exit_reason = ev.reason or ""
            self._fail_all(Closed(_ffi.GM_ECLOSED, f"the connection exited: {self.exit_reason}"))
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
        waiters, self._up_waiters = self._up_waiters, []
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
        st.ended = True
        if self._handle is not None:
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
               timeout: Optional[float]) -> _Stream:
        w = self._window
        ref = self._request(method, path, headers, body, stream, timeout, w if w > 0 else None, None)
        return self._register(ref, w)

    async def _head(self, st: _Stream) -> Response:
        informs: List[Event] = []
        pushes: List[Event] = []
        while True:
            if not st.events:
                await st.wait(None)
            ev = st.events[0]
            k = ev.kind
            if k == _DATA or k == _TRAILERS:
                # The head was taken (with await_): the body is all there is.
                return Response(self, st, 0, [], False, informs, pushes)
            st.pop()
            if k == _RESPONSE:
                return Response(self, st, ev.status, ev.headers, ev.fin, informs, pushes)
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
            raise Timeout(_ffi.GM_ETIMEOUT, "timed out waiting for the connection to come up") from None

    await_up = up

    async def next_event(self, timeout: Optional[float] = None) -> Event:
        """The next connection event (UP, DOWN, EXIT, connection-wide ERROR,
        NOTIFY), oldest first; the last 1024 are kept. Raises Closed once the
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

    async def wait_closed(self) -> str:
        """Waits for the connection's end; returns the EXIT reason."""
        return await asyncio.shield(self._exit)

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> "Connection":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def set_owner(self, queue: Queue) -> None:
        """Hands the connection to a (sync) Queue: its events go there from
        now on, and the streams still waiting here fail with BadState."""
        super().set_owner(queue)
        streams, self._streams = self._streams, {}
        for st in streams.values():
            st.fail(BadState(_ffi.GM_EBADSTATE, "the connection was given to another queue (set_owner)"))

    # ---- requests

    async def request(self, method: StrOrBytes, path: StrOrBytes, headers: HeadersIn = None,
                      body: Optional[BufferLike] = None, *, timeout: Optional[float] = None) -> Response:
        """Sends a request and returns the Response once its head arrives.
        ``timeout`` (seconds) bounds the whole stream (ERROR "timeout" →
        StreamTimeout)."""
        st = self._start(method, path, headers, body, False, timeout)
        return await self._head(st)

    async def get(self, path: StrOrBytes, headers: HeadersIn = None, *,
                  timeout: Optional[float] = None) -> Response:
        return await self._head(self._start(b"GET", path, headers, None, False, timeout))

    async def head(self, path: StrOrBytes, headers: HeadersIn = None, *,
                   timeout: Optional[float] = None) -> Response:
        return await self._head(self._start(b"HEAD", path, headers, None, False, timeout))

    async def options(self, path: StrOrBytes, headers: HeadersIn = None, *,
                      timeout: Optional[float] = None) -> Response:
        return await self._head(self._start(b"OPTIONS", path, headers, None, False, timeout))

    async def delete(self, path: StrOrBytes, headers: HeadersIn = None, *,
                     timeout: Optional[float] = None) -> Response:
        return await self._head(self._start(b"DELETE", path, headers, None, False, timeout))

    async def post(self, path: StrOrBytes, headers: HeadersIn = None, body: BufferLike = b"", *,
                   timeout: Optional[float] = None) -> Response:
        """POST with a body (to stream one, use headers() + data() + response())."""
        return await self._head(self._start(b"POST", path, headers, body, False, timeout))

    async def put(self, path: StrOrBytes, headers: HeadersIn = None, body: BufferLike = b"", *,
                  timeout: Optional[float] = None) -> Response:
        return await self._head(self._start(b"PUT", path, headers, body, False, timeout))

    async def patch(self, path: StrOrBytes, headers: HeadersIn = None, body: BufferLike = b"", *,
                    timeout: Optional[float] = None) -> Response:
        return await self._head(self._start(b"PATCH", path, headers, body, False, timeout))

    def start_request(self, method: StrOrBytes, path: StrOrBytes, headers: HeadersIn = None,
                      body: Optional[BufferLike] = None, *, timeout: Optional[float] = None) -> int:
        """Sends a whole request and returns its ref at once (Gun's request),
        for :meth:`response`, :meth:`await_` or :meth:`await_body`."""
        return self._start(method, path, headers, body, False, timeout).ref

    def headers(self, method: StrOrBytes, path: StrOrBytes, headers: HeadersIn = None, *,
                timeout: Optional[float] = None) -> int:
        """Gun's headers: starts a request whose body follows with
        :meth:`data`; returns the ref (then ``await conn.response(ref)``)."""
        return self._start(method, path, headers, None, True, timeout).ref

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

    async def response(self, ref: int) -> Response:
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
        return Body(status, headers, b"".join(chunks), [])

    # ---- WebSocket and ping

    async def ws_upgrade(self, path: StrOrBytes, headers: HeadersIn = None, *,
                         timeout: Optional[float] = None, **ws_opts: Any) -> WebSocket:
        """Upgrades to WebSocket (Gun's ws_upgrade) and returns the WebSocket
        once the server agreed. `ws_opts` (compress, protocols, keepalive,
        silence_pings, closing_timeout, max_message_size) are added to the
        connection's ws_opts; the stream's flow is the connection's window.
        A server that says no raises UpgradeRejected (with its status,
        headers and body); a failed handshake a StreamError."""
        opts = dict(self._ws_opts)
        opts.update(ws_opts)
        if self._window > 0:
            opts.setdefault("flow", self._window)
        ref = self._ws_upgrade(path, headers, opts)
        st = self._register(ref, int(opts.get("flow") or 0) if self._window > 0 else 0)
        while True:
            ev = await st.next(timeout)
            k = ev.kind
            if k == _UPGRADE:
                return WebSocket(self, st, ev.headers)
            if k == _RESPONSE:
                body = b""
                if not ev.fin:
                    resp = Response(self, st, ev.status, ev.headers, False, [], [])
                    body = await resp.read()
                raise UpgradeRejected(
                    _ffi.GM_ESTREAM,
                    f"the server answered {ev.status} instead of upgrading to WebSocket",
                    ev.status, ev.headers, body,
                )
            if k == _ERROR:
                raise stream_error(ev.reason or "error")

    async def ws_send(self, ref: int, frames: Union[WSMessage, Sequence[WSMessage]]) -> None:
        """Sends WebSocket frames (in the connection's sender thread, in call
        order: the socket may be slower than you)."""
        self._h()
        await self._in_sender(self._ws_send, ref, frames)

    async def ping(self, timeout: Optional[float] = None) -> None:
        """Gun's ping (HTTP/2): returns when the server has acknowledged it."""
        ref = self._ping()
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

