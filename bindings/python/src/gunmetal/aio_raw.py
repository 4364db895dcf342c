"""Raw byte streams for asyncio, shaped like asyncio's streams::

    reader, writer = await gunmetal.aio.open_raw("127.0.0.1", 7000)
    writer.write(b"ping\\n")
    await writer.drain()
    line = await reader.readline()
    writer.write_eof()              # TCP FIN (gen_tcp shutdown(S, write))
    rest = await reader.read()      # up to the peer's close
    writer.close()
    await writer.wait_closed()

The stream is the connection's ref 0 (Gun's raw ``undefined``). Reading
follows the consumer: the connection is opened with raw_opts.flow = `window`
(gen_tcp's {active, N}) and flow is added back only while fewer than `limit`
bytes wait in the reader, so a slow consumer leaves the bytes in the kernel
(the peer slows down) instead of growing memory. Writing never blocks the
loop: write() buffers, one worker thread hands the bytes to the library
(which blocks while the socket is full), and drain() waits while more than
`limit` bytes are waiting to go.

A stream object never reconnects (retry 0): see :mod:`gunmetal.raw`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import weakref
from typing import Any, Dict, Optional, Tuple

from . import _ffi
from ._core import BaseConnection, BufferLike, Queue, StrOrBytes
from ._errors import BadState, Closed, InvalidArgument, closed_error, stream_error
from ._events import EventKind
from .raw import _CLEAN_EXIT, DEFAULT_LIMIT, SendTimeout, check_limit, check_n, raw_options, send_timeout

__all__ = ["RawReader", "RawWriter", "open_raw", "open_raw_unix", "DEFAULT_WINDOW"]

#: raw_opts.flow of a stream: DATA events the library may deliver before the
#: reader takes some.
DEFAULT_WINDOW = 16

_DATA = EventKind.DATA
_DOWN = EventKind.DOWN
_EXIT = EventKind.EXIT
_NOTIFY = EventKind.NOTIFY
_ERROR = EventKind.ERROR
_UP = EventKind.UP


def _drain_weak(ref: "weakref.ReferenceType[_RawConn]") -> None:
    c = ref()
    if c is not None:
        c._drain()


class _RawConn(BaseConnection):
    """The connection under a reader/writer pair: its own queue, drained by
    the loop (add_reader on the queue's fd) into the reader's buffer."""

    def __init__(self, handle: int, queue: Queue, own_queue: bool, where: str,
                 loop: asyncio.AbstractEventLoop, window: int, limit: int) -> None:
        super().__init__(handle, queue, own_queue, where)
        self._loop = loop
        self._window = window
        self._limit = limit
        # DATA events the library may still deliver before it goes passive:
        # window at first, one less per DATA, topped up by _grant.
        self._credit = window
        self._buf = bytearray()
        self._eof = False
        self._error: Optional[BaseException] = None
        self._waiter: Optional["asyncio.Future[None]"] = None
        self._up: "asyncio.Future[str]" = loop.create_future()
        self._exited: "asyncio.Future[None]" = loop.create_future()
        self.exit_reason: Optional[str] = None
        self._fd = queue.fileno()
        loop.add_reader(self._fd, _drain_weak, weakref.ref(self))
        self._reading = True
        # writing
        self._wbuf = bytearray()
        self._wfin = False        # write_eof() was called
        self._wfin_sent = False
        self._wtask: Optional["asyncio.Future[None]"] = None
        self._werror: Optional[BaseException] = None
        self._sender: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._closing = False
        self._drained: Optional["asyncio.Future[None]"] = None

    # ---- events

    def _drain(self) -> None:
        try:
            for _ in range(16):  # then let the loop breathe (the fd is level-triggered)
                evs = self.queue.poll(256, 0)
                for ev in evs:
                    self._event(ev)
                if len(evs) < 256:
                    break
        except Exception as e:
            self._stop_reading()
            self._end(e)

    def _event(self, ev: Any) -> None:
        k = ev.kind
        if k == _DATA:
            self._credit -= 1
            if ev.data:
                self._buf += ev.data
                self._wake()
            self._grant()
        elif k == _UP:
            if not self._up.done():
                self._up.set_result(ev.protocol or "")
        elif k == _DOWN:
            # retry is 0: a DOWN is the stream's end; "closed" is the peer's close.
            self._end(None if ev.reason == "closed" else closed_error(ev.reason, self._where))
        elif k == _EXIT:
            self.exit_reason = ev.reason or ""
            self._stop_reading()
            self._end(None if self.exit_reason in _CLEAN_EXIT else closed_error(self.exit_reason, self._where))
            if not self._exited.done():
                self._exited.set_result(None)
        elif k == _ERROR:
            self._end(stream_error(ev.reason or "error"))
        # NOTIFY "passive": _credit reached 0 already; _grant resumes.

    def _end(self, exc: Optional[BaseException]) -> None:
        if self._eof or self._error is not None:
            return
        if exc is None:
            self._eof = True
        else:
            self._error = exc
        if not self._up.done():
            self._up.set_exception(exc if exc is not None else closed_error("closed", self._where))
        self._wake()
        d = self._drained
        if d is not None and not d.done():
            d.set_result(None)

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _grant(self, waiting: bool = False) -> None:
        """Gives flow back while the reader holds less than `limit` bytes,
        or when a read waits for more (readexactly(n) past the limit), as
        asyncio's StreamReader resumes reading: the library reads the
        socket only as far as the consumer keeps up."""
        if (self._credit <= self._window // 2 and (waiting or len(self._buf) < self._limit)
                and not self._eof and self._error is None and self._handle is not None):
            n = self._window - self._credit
            try:
                self.update_flow(0, n)
            except Closed:
                return  # the EXIT is on its way
            self._credit += n

    async def _wait(self) -> None:
        """Waits for more bytes, the end or an error."""
        if self._error is not None:
            raise self._error
        if self._eof:
            return
        if self._waiter is not None:
            raise RuntimeError("another coroutine is already waiting for this raw stream's data")
        self._waiter = self._loop.create_future()
        self._grant(True)
        try:
            await self._waiter
        finally:
            self._waiter = None
        if self._error is not None and not self._buf:
            raise self._error

    def _take(self, n: int) -> bytes:
        out = bytes(self._buf[:n])
        del self._buf[:n]
        self._grant()
        return out

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
        if self._sender is not None:
            self._sender.shutdown(wait=False)
            self._sender = None
        if not self._loop.is_closed():
            self._end(Closed(_ffi.GM_ECLOSED, "raw stream is closed: close() was called"))
            if not self._exited.done():
                self._exited.set_result(None)

    # ---- writing: one job at a time in a worker thread

    def _kick(self) -> None:
        if self._wtask is None and (self._wbuf or (self._wfin and not self._wfin_sent) or self._closing):
            self._wtask = asyncio.ensure_future(self._write_loop(), loop=self._loop)

    async def _write_loop(self) -> None:
        chunk = b""
        try:
            while self._handle is not None:
                if self._wbuf:
                    chunk, self._wbuf = bytes(self._wbuf), bytearray()
                    await self._in_sender(chunk, False)
                    chunk = b""
                    self._wake_drain()
                elif self._wfin and not self._wfin_sent:
                    self._wfin_sent = True
                    await self._in_sender(b"", True)
                elif self._closing:
                    self._closing = False
                    # Gun's shutdown: FIN once the bytes are out, then the end
                    # comes with the peer's close (or raw_opts.closing_timeout).
                    try:
                        self.shutdown()
                    except Closed:
                        pass
                else:
                    break
        except Exception as e:
            # A send timeout: rest is what did not go out, the buffered
            # bytes behind it included (dropped, as gen_tcp's RestData).
            st = send_timeout(e, chunk)
            if st is not None:
                st.rest += bytes(self._wbuf)
            self._werror = st or e
            self._wbuf.clear()
            self._wake_drain()
        finally:
            self._wtask = None

    async def _in_sender(self, data: bytes, fin: bool) -> None:
        if self._sender is None:
            self._sender = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="gunmetal-raw-send")
        await self._loop.run_in_executor(self._sender, self._data, 0, data, fin)

    def _take_werror(self) -> BaseException:
        """The error a send met; a SendTimeout that left the connection up
        is raised once, then writing may go on (send its ``rest`` again)."""
        e = self._werror
        assert e is not None
        if isinstance(e, SendTimeout) and not e.closed:
            self._werror = None
        return e

    def _wake_drain(self) -> None:
        d = self._drained
        if d is not None and not d.done() and (len(self._wbuf) <= self._limit or self._werror is not None):
            d.set_result(None)


class RawReader:
    """The reading half (asyncio.StreamReader's methods)."""

    def __init__(self, conn: _RawConn) -> None:
        self._c = conn

    async def read(self, n: int = -1) -> bytes:
        """Up to n bytes as soon as some are there (n < 0: everything up to
        the end of the stream); b"" at the end."""
        c = self._c
        if check_n(n, "n") == 0:
            return b""
        if n < 0:
            while not c._eof:
                await c._wait()
            if c._error is not None and not c._buf:
                raise c._error
            return c._take(len(c._buf))
        while not c._buf and not c._eof:
            await c._wait()
        if not c._buf and c._error is not None:
            raise c._error
        return c._take(n)

    async def readexactly(self, n: int) -> bytes:
        """Exactly n bytes; asyncio.IncompleteReadError if the stream ends
        first."""
        c = self._c
        if check_n(n, "n") < 0:
            raise InvalidArgument(_ffi.GM_EINVAL, f"n must not be negative, not {n}")
        while len(c._buf) < n:
            if c._eof or c._error is not None:
                if c._error is not None:
                    raise c._error
                partial = c._take(len(c._buf))
                raise asyncio.IncompleteReadError(partial, n)
            await c._wait()
        return c._take(n)

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        """Bytes up to and including `separator`. At the end of the stream
        asyncio.IncompleteReadError; past `limit` bytes without it,
        asyncio.LimitOverrunError (the bytes stay buffered), as asyncio."""
        c = self._c
        if not separator:
            raise ValueError("separator should be at least one-byte string")
        start = 0
        while True:
            i = c._buf.find(separator, start)
            if i >= 0:
                end = i + len(separator)
                if end > c._limit:
                    raise asyncio.LimitOverrunError("separator is found, but chunk is longer than limit", i)
                return c._take(end)
            if len(c._buf) > c._limit:
                raise asyncio.LimitOverrunError("separator is not found, and chunk exceed the limit",
                                                len(c._buf))
            if c._eof or c._error is not None:
                if c._error is not None:
                    raise c._error
                partial = c._take(len(c._buf))
                raise asyncio.IncompleteReadError(partial, None)
            start = max(0, len(c._buf) - len(separator) + 1)
            await c._wait()

    async def readline(self) -> bytes:
        """One line, b"\\n" included; at the end of the stream what is left
        (b"" when nothing). ValueError past `limit` bytes (as asyncio)."""
        try:
            return await self.readuntil(b"\n")
        except asyncio.IncompleteReadError as e:
            return e.partial
        except asyncio.LimitOverrunError as e:
            c = self._c
            if c._buf.startswith(b"\n", e.consumed):
                c._take(e.consumed + 1)
            else:
                c._take(len(c._buf))
            raise ValueError(e.args[0]) from None

    def at_eof(self) -> bool:
        """True once the peer closed and every byte was read."""
        return self._c._eof and not self._c._buf

    def exception(self) -> Optional[BaseException]:
        return self._c._error

    def __aiter__(self) -> "RawReader":
        return self

    async def __anext__(self) -> bytes:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line


class RawWriter:
    """The writing half (asyncio.StreamWriter's methods)."""

    def __init__(self, conn: _RawConn, reader: RawReader) -> None:
        self._c = conn
        self._reader = reader

    @property
    def conn(self) -> BaseConnection:
        """The underlying connection (info(), stream_info(0), ...)."""
        return self._c

    def _check_open(self) -> None:
        c = self._c
        if c._werror is not None:
            raise c._take_werror()
        if c._handle is None:
            raise Closed(_ffi.GM_ECLOSED, "raw stream is closed: close() was called")
        if c._wfin or c._closing or c._wfin_sent:
            raise BadState(_ffi.GM_EBADSTATE, "the write side of this raw stream was shut down (write_eof or close)")

    def write(self, data: BufferLike) -> None:
        """Buffers `data`; it goes out in the background. Follow with
        ``await drain()``."""
        self._check_open()
        b = data.encode() if isinstance(data, str) else bytes(memoryview(data))
        if b:
            self._c._wbuf += b
            self._c._kick()

    def writelines(self, data: Any) -> None:
        for d in data:
            self.write(d)

    async def drain(self) -> None:
        """Waits until at most `limit` bytes are waiting to go out. Raises
        the error a send met (with the library's sentence): a peer that
        takes nothing for tcp_opts send_timeout is
        :class:`gunmetal.raw.SendTimeout`, whose ``rest`` are the bytes
        written and not sent (gen_tcp's RestData; with send_timeout_close
        False the stream stays up and they may be written again)."""
        c = self._c
        while len(c._wbuf) > c._limit and c._werror is None and c._handle is not None:
            c._drained = c._loop.create_future()
            try:
                await c._drained
            finally:
                c._drained = None
        if c._werror is not None:
            raise c._take_werror()
        if c._error is not None and not isinstance(c._error, Closed):
            raise c._error

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        """Shuts down the write side once the buffered bytes are out (TCP
        FIN; gen_tcp's shutdown(S, write)); the reader goes on until the
        peer closes."""
        self._check_open()
        self._c._wfin = True
        self._c._kick()

    def is_closing(self) -> bool:
        c = self._c
        return c._closing or c._handle is None or c._exited.done() or (c._wfin_sent and c._wtask is None
                                                                        and c._eof)

    def close(self) -> None:
        """Closes gracefully: the buffered bytes go out, then the write side
        shuts down and the connection ends when the peer closes (Gun's
        shutdown; at most raw_opts.closing_timeout, 15 s by default). Await
        :meth:`wait_closed` for the end; :meth:`abort` closes at once."""
        c = self._c
        if c._handle is None or c._exited.done():
            return
        c._closing = True
        c._kick()

    def abort(self) -> None:
        """Closes at once: buffered bytes are dropped (gm_close)."""
        self._c.close()

    async def wait_closed(self) -> None:
        """Waits for the connection's end, then releases it."""
        c = self._c
        if c._handle is not None:
            await asyncio.shield(c._exited)
        c.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """"peername" and "sockname" as (ip, port) tuples, or gm_info's
        fields by name ("transport", "protocol", ...)."""
        c = self._c
        if c._handle is None:
            return default
        info: Dict[str, str] = c.info()
        if name == "sockname":
            ip, port = info.get("sock_ip"), info.get("sock_port")
            return default if ip is None or port is None else (ip, int(port))
        if name == "peername":
            peer = info.get("peer")
            if peer is None:
                return default
            h, sep, p = peer.rpartition(":")
            return (h.strip("[]"), int(p)) if sep and p.isdigit() else peer
        return info.get(name, default)

    def __repr__(self) -> str:
        return f"<gunmetal.aio.RawWriter {self._c._where}{' closed' if self._c.closed else ''}>"


async def _finish(handle: int, q: Queue, own: bool, where: str, window: int, limit: int,
                  timeout: Optional[float]) -> Tuple[RawReader, RawWriter]:
    c = _RawConn(handle, q, own, where, asyncio.get_running_loop(), window, limit)
    try:
        if timeout is None:
            await c._up
        else:
            await asyncio.wait_for(asyncio.shield(c._up), timeout)
    except BaseException:
        c.close()
        raise
    r = RawReader(c)
    return r, RawWriter(c, r)


def _window_of(o: Dict[str, Any], window: Any) -> int:
    check_n(window, "window")
    if window <= 0:
        raise InvalidArgument(_ffi.GM_EINVAL, f"window must be positive, not {window}")
    fl = o.get("raw_opts", {}).get("flow")
    if isinstance(fl, int) and not isinstance(fl, bool) and fl > 0:
        return fl
    return int(window)


async def open_raw(host: StrOrBytes, port: int, *, limit: int = DEFAULT_LIMIT, window: int = DEFAULT_WINDOW,
                   timeout: Optional[float] = None, **opts: Any) -> Tuple[RawReader, RawWriter]:
    """Connects to host:port with Gun's raw protocol (asyncio.open_connection's
    shape) and returns ``(reader, writer)`` once it is up. `opts` are
    gunmetal.open's (transport="tls", tls_opts, tcp_opts, connect_timeout,
    raw_opts...); protocols is ["raw"] and retry 0. Raises the library's
    error (ConnectionRefused, ConnectTimeout, TLSError, ... with Gun's
    ``reason``)."""
    check_limit(limit)
    o = raw_options(opts, window)
    w = _window_of(o, window)
    handle, q, own, where = BaseConnection._open_handle(host, port, None, o)
    return await _finish(handle, q, own, where, w, limit, timeout)


async def open_raw_unix(path: StrOrBytes, *, limit: int = DEFAULT_LIMIT, window: int = DEFAULT_WINDOW,
                        timeout: Optional[float] = None, **opts: Any) -> Tuple[RawReader, RawWriter]:
    """As :func:`open_raw`, over the Unix stream socket at `path`."""
    check_limit(limit)
    o = raw_options(opts, window)
    w = _window_of(o, window)
    handle, q, own, where = BaseConnection._open_unix_handle(path, None, o)
    return await _finish(handle, q, own, where, w, limit, timeout)
