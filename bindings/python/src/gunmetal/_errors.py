"""Exceptions: one class per GM_E* status code, carrying the library's sentence."""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple, Type

from . import _ffi


class Error(Exception):
    """A failed gunmetal call.

    ``code`` is the library's GM_E* status (negative int), ``message`` the
    sentence the library gave (gm_errmsg), ``name`` the code's English name
    (gm_strerror).  ``str(err)`` is the sentence.
    """

    code: int
    message: str

    def __init__(self, code: int, message: str = "") -> None:
        self.code = code
        self.message = message or strerror(code)
        super().__init__(self.message)

    @property
    def name(self) -> str:
        return strerror(self.code)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}, {self.message!r})"

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.code, self.message))


class InvalidArgument(Error, ValueError):
    """GM_EINVAL: bad input (NULL, bad UTF-8, CR/LF in a header, port out of range...)."""


class NoMemory(Error, MemoryError):
    """GM_ENOMEM."""


class Closed(Error, ConnectionError):
    """GM_ECLOSED: the connection was closed or has exited (a ConnectionError).

    ``reason`` is Gun's reason for the exit when the connection exited by
    itself or was shut down ("econnrefused", "timeout", "nxdomain",
    "tls_alert: bad_certificate: ...", "shutdown", ...): the EXIT event's,
    which stays queued for the owner; None when unknown (close() was called
    on this object, or a library without it). The subclasses
    ConnectionRefused, ConnectTimeout and TLSError name the usual failures."""

    def __init__(self, code: int, message: str = "", reason: Optional[str] = None) -> None:
        super().__init__(code, message)
        self._reason = reason

    @property
    def reason(self) -> Optional[str]:
        return self._reason

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.code, self.message, self._reason))


class ConnectionRefused(Closed, ConnectionRefusedError):
    """The connection exited because the server refused it ("econnrefused")."""


class ConnectTimeout(Closed, TimeoutError):
    """The connection exited because connecting (TCP, DNS or the TLS
    handshake) timed out ("timeout"). Not a :class:`Timeout`: that one is a
    wait of yours running out while the connection may still come up."""


class TLSError(Closed):
    """The connection exited because TLS failed: a certificate that does not
    verify, a handshake alert, or a server that does not speak TLS."""


class ConnectionClosed(Closed):
    """A WebSocket is closed: ``recv()`` raises it once the close frame was
    delivered (or the stream ended otherwise). ``close_code`` and
    ``close_reason`` are the close frame's (1006 and Gun's reason, such as
    "closed" or "normal", when the WebSocket ended without one), and
    ``reason`` is ``close_reason``. ``code`` stays the library status
    (GM_ECLOSED), as for every :class:`Error`."""

    def __init__(self, code: int, message: str = "", close_code: int = 1006, close_reason: str = "") -> None:
        if not message:
            message = f"the WebSocket is closed: {close_code}" + (f" {close_reason}" if close_reason else "")
        super().__init__(code, message, close_reason)
        self.close_code = close_code
        self.close_reason = close_reason

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.code, self.message, self.close_code, self.close_reason))


class QueueClosed(Closed):
    """GM_EQUEUE: the queue was freed."""


class WouldBlock(Error, BlockingIOError):
    """GM_EAGAIN: a send that may not wait (gm_ws_send_nowait) found the
    output past its bound; nothing was sent. The binding's own sends wait
    (on their sender thread), so it does not raise this itself."""


class Timeout(Error, TimeoutError):
    """GM_ETIMEOUT: a wait ran out of time."""


_OPTION_KEY = re.compile(r"^option ([^\s=:]+)(?: = |: )")


class OptionError(Error, ValueError):
    """GM_EOPTION: a bad option; ``key`` names it ("http_opts.flow"), or None."""

    key: Optional[str]

    def __init__(self, code: int, message: str = "", key: Optional[str] = None) -> None:
        super().__init__(code, message)
        if key is None:
            m = _OPTION_KEY.match(self.message)
            key = m.group(1) if m else None
        self.key = key

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.code, self.message, self.key))


class NoStream(Error, LookupError):
    """GM_ENOSTREAM: no such stream on this connection."""


class NotUp(Error):
    """GM_ENOTUP: the connection is not up (yet)."""


class BadState(Error):
    """GM_EBADSTATE: not possible in the connection's current state."""


class Unsupported(Error, NotImplementedError):
    """GM_EUNSUPPORTED: the protocol in use (or the loaded library) cannot do that."""


class StreamError(Error):
    """GM_ESTREAM: a stream ended with an ERROR event; ``reason`` is Gun's reason."""

    @property
    def reason(self) -> str:
        return self.message


class ProtocolError(StreamError):
    """A stream (or the connection) failed with a protocol error."""


class StreamTimeout(StreamError, Timeout):
    """A stream's own timeout (the request's ``timeout``) fired."""


class StreamClosed(StreamError, Closed):
    """A stream was lost with its connection ("closed", "closing", ...)."""


class UpgradeRejected(StreamError):
    """The server answered a WebSocket upgrade with an ordinary response:
    ``status``, ``headers`` and ``body`` are that response's."""

    def __init__(self, code: int, message: str = "", status: int = 0,
                 headers: Optional[List[Tuple[str, str]]] = None, body: bytes = b"") -> None:
        super().__init__(code, message)
        self.status = status
        self.headers = headers or []
        self.body = body

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.code, self.message, self.status, self.headers, self.body))


class TunnelRefused(StreamError):
    """The proxy answered a CONNECT (:meth:`Connection.connect`) with a
    status other than 2xx (Gun's do_connect_failure: an ordinary response,
    e.g. 407 without credentials): ``status``, ``headers`` and ``body`` are
    that response's. The connection stays the proxy's."""

    def __init__(self, code: int, message: str = "", status: int = 0,
                 headers: Optional[List[Tuple[str, str]]] = None, body: bytes = b"") -> None:
        super().__init__(code, message)
        self.status = status
        self.headers = headers or []
        self.body = body

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.code, self.message, self.status, self.headers, self.body))


class InternalError(Error):
    """GM_EINTERNAL: a bug in the library; please report the message."""


class ForkError(Error, RuntimeError):
    """Any call in a child process forked after the library was loaded: its
    Go runtime does not survive fork(). The message says what to do."""


_BY_CODE: Dict[int, Type[Error]] = {
    _ffi.GM_EINVAL: InvalidArgument,
    _ffi.GM_ENOMEM: NoMemory,
    _ffi.GM_ECLOSED: Closed,
    _ffi.GM_ETIMEOUT: Timeout,
    _ffi.GM_EOPTION: OptionError,
    _ffi.GM_ENOSTREAM: NoStream,
    _ffi.GM_ENOTUP: NotUp,
    _ffi.GM_EBADSTATE: BadState,
    _ffi.GM_EUNSUPPORTED: Unsupported,
    _ffi.GM_ESTREAM: StreamError,
    _ffi.GM_EINTERNAL: InternalError,
    _ffi.GM_EQUEUE: QueueClosed,
    _ffi.GM_EAGAIN: WouldBlock,
}


# The names gm_strerror gives, for a forked child that cannot ask the library.
_NAMES = {
    0: "ok", -1: "invalid argument", -2: "out of memory", -3: "connection closed",
    -4: "timed out", -5: "invalid option", -6: "no such stream", -7: "connection not up",
    -8: "not possible in this state", -9: "not supported by the protocol",
    -10: "stream error", -11: "internal error", -12: "queue freed", -13: "would block",
}


def strerror(code: int) -> str:
    """The library's English name of a status code."""
    if _ffi.forked:
        return _NAMES.get(code, "unknown error")
    s = _ffi.gm_strerror(code)
    return s.decode("utf-8", "replace") if s else "unknown error"


def errmsg() -> str:
    """The calling thread's last error sentence (gm_errmsg)."""
    s = _ffi.gm_errmsg()
    return s.decode("utf-8", "replace") if s else ""


def from_code(code: int, message: Optional[str] = None) -> Error:
    """The exception for status `code`; the sentence defaults to gm_errmsg()."""
    if message is None:
        message = errmsg()
    if code == _ffi.GM_ESTREAM:
        return stream_error(message)
    cls = _BY_CODE.get(code, Error)
    return cls(code, message)


def stream_error(reason: str) -> StreamError:
    """The exception for a stream that ended with an ERROR event of `reason`."""
    atom = reason.split(":", 1)[0].strip()
    cls: Type[StreamError] = StreamError
    if atom == "timeout":
        cls = StreamTimeout
    elif atom in ("closed", "closing", "shutdown", "normal", "owner_down") or atom.startswith("closed"):
        cls = StreamClosed
    elif "protocol_error" in atom:
        cls = ProtocolError
    return cls(_ffi.GM_ESTREAM, reason)


def closed_error(reason: Optional[str], where: str = "", message: str = "") -> Closed:
    """The Closed exception for a connection that exited with Gun's `reason`
    (None: unknown), of the subclass that names the failure."""
    if not message:
        message = "connection is closed" if reason is None else f"the connection exited: {reason}"
        if where:
            message = f"{where}: {message}"
    cls: Type[Closed] = Closed
    if reason is not None:
        atom = reason.split(":", 1)[0].strip()
        if atom == "econnrefused":
            cls = ConnectionRefused
        elif atom in ("timeout", "connect_timeout", "tls_handshake_timeout", "domain_lookup_timeout"):
            cls = ConnectTimeout
        elif atom.startswith("tls") or "x509" in reason or atom in ("bad_certificate", "unknown_ca"):
            cls = TLSError
    return cls(_ffi.GM_ECLOSED, message, reason)


def check(rc: int) -> int:
    """Raises the exception for a negative status, else returns rc."""
    if rc < 0:
        raise from_code(rc)
    return rc
