"""Raw byte streams (Gun's ``raw`` protocol, gen_tcp's client semantics),
driven synchronously: a socket-like object over a gunmetal connection.

::

    with gunmetal.open_raw("127.0.0.1", 7000, timeout=5) as s:
        s.sendall(b"ping\\n")
        line = s.readline()
        s.shutdown_write()          # TCP FIN (gen_tcp shutdown(S, write))
        rest = s.recv_until_eof()   # the peer's answer up to its close

The stream is the connection's ref 0 (Gun's ``undefined``): received bytes
are the DATA events of ref 0, taken from the library only when a read needs
them, so reading follows the consumer (the library stops reading the socket
while its events wait). A peer close is the end of the stream (``recv``
answers ``b""``); any other end raises the library's error with Gun's reason.

A stream object never reconnects (``retry`` is 0): a reconnect would splice
two byte streams into one. For reconnecting raw connections use
``gunmetal.open(host, port, protocols=["raw"], retry=N)`` and its events.

Sends are bounded by ``tcp_opts["send_timeout"]`` as gen_tcp's: a send the
peer does not take within it raises :class:`SendTimeout`, which says how
many bytes went out (``sent``) and which did not (``rest``: gen_tcp's
``{timeout, RestData}``). With ``tcp_opts["send_timeout_close"]`` True (the
default) the connection closes; with False (raw over tcp only) it stays up
and ``rest`` may be sent again.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Dict, Optional

from . import _ffi
from ._core import BufferLike, Connection, Queue, StrOrBytes
from ._errors import BadState, Closed, InvalidArgument, OptionError, Timeout, closed_error, stream_error
from ._events import EventKind

__all__ = ["RawStream", "SendTimeout", "open_raw", "open_raw_unix", "DEFAULT_LIMIT"]

#: readline's bound on a line (as asyncio's StreamReader limit).
DEFAULT_LIMIT = 2**16

_DATA = EventKind.DATA
_DOWN = EventKind.DOWN
_EXIT = EventKind.EXIT
_NOTIFY = EventKind.NOTIFY
_ERROR = EventKind.ERROR
_UP = EventKind.UP

# An EXIT with one of these reasons, or a DOWN "closed", ends the stream
# cleanly (EOF); any other reason is an error.
_CLEAN_EXIT = ("closed", "shutdown", "normal")


class SendTimeout(Timeout):
    """A raw send that did not complete within tcp_opts send_timeout
    (GM_ETIMEOUT; gen_tcp's ``{error, {timeout, RestData}}``): ``sent`` bytes
    of it went out, ``rest`` holds those that did not. ``closed``: the
    connection closes (send_timeout_close True, the default); False: it
    stays up, the peer got exactly the ``sent`` bytes, and ``rest`` may be
    sent again."""

    def __init__(self, code: int, message: str = "", sent: int = 0, rest: bytes = b"",
                 closed: bool = True) -> None:
        super().__init__(code, message)
        self.sent = sent
        self.rest = rest
        self.closed = closed

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.code, self.message, self.sent, self.rest, self.closed))


# The library's sentence for a raw send timeout (gm_data_v2 in gunmetal.h).
_SEND_TIMEOUT = re.compile(r"^timeout: (\d+) of (\d+) bytes went out within tcp_opts\.send_timeout")


def send_timeout(err: BaseException, data: Any) -> Optional[SendTimeout]:
    """The SendTimeout of a failed send of `data`, when err is the library's
    raw send timeout; None otherwise."""
    if not isinstance(err, Timeout) or isinstance(err, SendTimeout):
        return None
    m = _SEND_TIMEOUT.match(err.message)
    if m is None:
        return None
    b = data.encode() if isinstance(data, str) else memoryview(data).cast("B")
    sent = min(int(m.group(1)), len(b))
    return SendTimeout(err.code, err.message, sent, bytes(b[sent:]), "the connection closes" in err.message)


def raw_options(opts: Dict[str, Any], flow: Optional[int]) -> Dict[str, Any]:
    """The options of a raw stream: protocols ["raw"], retry 0, and
    raw_opts.flow = `flow` unless the caller set one. Refuses what a stream
    object cannot honour, naming it."""
    o = dict(opts)
    protos = o.get("protocols", ["raw"])
    if not isinstance(protos, (list, tuple)) or list(protos) != ["raw"]:
        raise OptionError(_ffi.GM_EOPTION, f'option protocols = {protos!r}: a raw stream is protocols ["raw"]')
    o["protocols"] = ["raw"]
    retry = o.get("retry", 0)
    if retry != 0:
        raise OptionError(
            _ffi.GM_EOPTION,
            f"option retry = {retry!r}: a raw stream object ends at the peer's close (a reconnect would "
            'splice two byte streams); use gunmetal.open(..., protocols=["raw"], retry=N) and its events',
        )
    o["retry"] = 0
    ro = o.get("raw_opts")
    if ro is not None and not isinstance(ro, dict):
        raise OptionError(_ffi.GM_EOPTION, f"option raw_opts = {ro!r}: must be an object")
    ro = dict(ro or {})
    if flow is not None and "flow" not in ro:
        ro["flow"] = flow
    if ro:
        o["raw_opts"] = ro
    return o


def check_limit(limit: Any) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be an int, not {type(limit).__name__}")
    if limit <= 0:
        raise InvalidArgument(_ffi.GM_EINVAL, f"limit must be positive, not {limit}")
    return limit


def check_n(n: Any, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{what} must be an int, not {type(n).__name__}")
    return n


class RawStream:
    """A raw byte stream over a gunmetal connection (see the module doc).
    Make one with :func:`gunmetal.open_raw` or :func:`gunmetal.open_raw_unix`.

    ``timeout`` (seconds, None: no bound) bounds each wait of a read;
    reads raise :class:`gunmetal.Timeout` when it runs out, with the stream
    unchanged. Not thread-safe: use one stream from one thread at a time."""

    def __init__(self, conn: Connection, timeout: Optional[float], limit: int) -> None:
        #: the underlying connection (info(), stream_info(0), ...)
        self.conn = conn
        self.timeout = timeout
        self.limit = limit
        self._buf = bytearray()
        self._eof = False
        self._error: Optional[BaseException] = None
        # raw_opts.flow the caller asked for (gen_tcp's {active, N}): after
        # its NOTIFY "passive", the next read that needs bytes adds N again.
        self._flow: int = 0
        self._passive = False
        self._wfin = False  # shutdown_write() or shutdown() was called

    # ---- taking events

    def _fill(self) -> bool:
        """Waits for the next piece of the stream into the buffer; False at
        the end of the stream. Raises the stream's error."""
        while True:
            if self._error is not None:
                raise self._error
            if self._eof:
                return False
            if self._passive:
                self._passive = False
                self.conn.update_flow(0, self._flow)
            try:
                ev = self.conn.await_(0, self.timeout)
            except Closed as e:
                # The connection exited without a DOWN first (it never came
                # up, or a shutdown ended it): EXIT's reason says how.
                if e.reason in _CLEAN_EXIT and self.conn.closed is False:
                    self._eof = True
                    return False
                self._error = e
                raise
            k = ev.kind
            if k == _DATA:
                if ev.data:
                    self._buf += ev.data
                    return True
            elif k == _NOTIFY:
                if ev.reason == "passive" and self._flow:
                    self._passive = True
            elif k == _DOWN:
                if ev.reason == "closed":
                    self._eof = True
                else:
                    self._error = closed_error(ev.reason, self.conn._where)
            elif k == _ERROR:
                self._error = stream_error(ev.reason or "error")
            # UP: the stream starts (only the first: retry is 0)

    # ---- reading

    def recv(self, n: int = 65536) -> bytes:
        """Up to n bytes (n > 0) as soon as some are there; b"" at the end of
        the stream (the peer closed), as socket.recv."""
        if check_n(n, "n") <= 0:
            raise InvalidArgument(_ffi.GM_EINVAL, f"n must be positive, not {n}")
        if not self._buf and not self._fill():
            return b""
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def recv_exactly(self, n: int) -> bytes:
        """Exactly n bytes; asyncio.IncompleteReadError (an EOFError, with
        ``.partial``) if the stream ends first."""
        if check_n(n, "n") < 0:
            raise InvalidArgument(_ffi.GM_EINVAL, f"n must not be negative, not {n}")
        while len(self._buf) < n:
            if not self._fill():
                partial = bytes(self._buf)
                self._buf.clear()
                raise asyncio.IncompleteReadError(partial, n)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def readline(self) -> bytes:
        """One line, b"\\n" included; at the end of the stream what is left
        (b"" when nothing). ValueError when no b"\\n" comes within
        ``limit`` bytes (the buffered bytes stay for recv)."""
        start = 0
        while True:
            i = self._buf.find(b"\n", start)
            if i >= 0:
                if i + 1 > self.limit:
                    raise ValueError(f"line longer than the limit ({self.limit} bytes)")
                out = bytes(self._buf[: i + 1])
                del self._buf[: i + 1]
                return out
            if len(self._buf) > self.limit:
                raise ValueError(f"no line end within the limit ({self.limit} bytes)")
            start = len(self._buf)
            if not self._fill():
                out = bytes(self._buf)
                self._buf.clear()
                return out

    def recv_until_eof(self) -> bytes:
        """Everything up to the end of the stream (the peer's close)."""
        while self._fill():
            pass
        out = bytes(self._buf)
        self._buf.clear()
        return out

    @property
    def eof(self) -> bool:
        """True once the peer closed and every byte was read."""
        return self._eof and not self._buf

    # ---- writing

    def sendall(self, data: BufferLike) -> None:
        """Sends every byte (gm_data on ref 0). Blocks while the socket is
        slower than the caller (the bytes are never copied into an unbounded
        buffer); bytes arriving meanwhile are kept for the next read. A peer
        that takes nothing for tcp_opts send_timeout raises
        :class:`SendTimeout` (``sent``, ``rest``, ``closed``)."""
        if self._wfin:
            raise BadState(_ffi.GM_EBADSTATE, "the write side of this raw stream was shut down (shutdown_write)")
        if self._error is not None:
            raise self._error
        try:
            self.conn.data(0, data)
        except Timeout as e:
            st = send_timeout(e, data)
            if st is None:
                raise
            raise st from None

    def shutdown_write(self) -> None:
        """Shuts down the write side once what was sent is out (TCP FIN,
        TLS close_notify; gen_tcp's shutdown(S, write)); reading goes on
        until the peer closes. Sending afterwards raises BadState."""
        self.conn.data(0, b"", fin=True)
        self._wfin = True

    def shutdown(self) -> None:
        """Gun's shutdown on raw: shuts down the write side and lets the
        connection end when the peer closes (at most raw_opts.closing_timeout,
        15 s by default); read on until recv answers b""."""
        self.conn.shutdown()
        self._wfin = True

    def close(self) -> None:
        """Closes at once (gm_close: bytes not yet on the wire are dropped).
        To know the peer got everything, use the gen_tcp manual's way first:
        shutdown_write(), then read until recv answers b"". Idempotent."""
        self.conn.close()

    @property
    def closed(self) -> bool:
        return self.conn.closed

    def __enter__(self) -> "RawStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<gunmetal.RawStream {self.conn._where}{' closed' if self.closed else ''}>"


def _finish(conn: Connection, timeout: Optional[float], limit: int, opts: Dict[str, Any]) -> RawStream:
    s = RawStream(conn, timeout, limit)
    ro = opts.get("raw_opts") or {}
    fl = ro.get("flow") if isinstance(ro, dict) else None
    if isinstance(fl, int) and not isinstance(fl, bool) and fl > 0:
        s._flow = fl
    try:
        conn.await_up(timeout)
    except BaseException:
        conn.close()
        raise
    return s


def open_raw(host: StrOrBytes, port: int, *, timeout: Optional[float] = None,
             limit: int = DEFAULT_LIMIT, owner: Optional[Queue] = None, **opts: Any) -> RawStream:
    """Connects to host:port with Gun's raw protocol and returns a
    :class:`RawStream` once the connection is up (TLS handshake included
    with ``transport="tls"``). `opts` are gunmetal.open's (tcp_opts,
    tls_opts, connect_timeout, raw_opts: flow, closing_timeout...);
    protocols is ["raw"] and retry 0. Raises the library's error (Closed:
    ConnectionRefused, ConnectTimeout, TLSError, with Gun's ``reason``)."""
    o = raw_options(opts, None)
    check_limit(limit)
    handle, q, own, where = Connection._open_handle(host, port, owner, o)
    return _finish(Connection(handle, q, own, where), timeout, limit, o)


def open_raw_unix(path: StrOrBytes, *, timeout: Optional[float] = None,
                  limit: int = DEFAULT_LIMIT, owner: Optional[Queue] = None, **opts: Any) -> RawStream:
    """As :func:`open_raw`, over the Unix stream socket at `path`."""
    o = raw_options(opts, None)
    check_limit(limit)
    handle, q, own, where = Connection._open_unix_handle(path, owner, o)
    return _finish(Connection(handle, q, own, where), timeout, limit, o)
