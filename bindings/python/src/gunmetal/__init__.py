"""gunmetal: Erlang's Gun HTTP client (HTTP/1.1, HTTP/2, WebSocket) as a Go
engine behind a C ABI, driven from Python over ctypes.

Sync::

    import gunmetal
    with gunmetal.open("example.com", 443) as conn:
        conn.await_up(5)
        resp = conn.fetch("GET", "/", timeout=5)
        print(resp.status, resp.headers["content-type"], resp.text())

asyncio: see :mod:`gunmetal.aio`.
"""

from __future__ import annotations

from ._core import (
    BaseConnection,
    BufferLike,
    Connection,
    HeadersIn,
    WebSocket,
    Managed,
    Queue,
    SSEStream,
    StrOrBytes,
    live_handles,
    open,
    open_unix,
    open_fd,
    tls_session_cache,
    version,
)
from ._errors import (
    BadState,
    Closed,
    ConnectionClosed,
    ConnectionRefused,
    ConnectTimeout,
    Error,
    ForkError,
    InternalError,
    InvalidArgument,
    NoMemory,
    NoStream,
    NotUp,
    OptionError,
    ProtocolError,
    QueueClosed,
    WouldBlock,
    StreamClosed,
    StreamError,
    StreamTimeout,
    Timeout,
    TLSError,
    TunnelRefused,
    Unsupported,
    UpgradeRejected,
    strerror,
)
from ._response import AsyncMode, Headers, Response, SyncMode
from .raw import RawStream, open_raw, open_raw_unix
from ._events import Body, Event, EventKind, Header, Received, SSEEvent, TraceEvent, WSFrame, WSMessage, WSOpcode

__version__ = "0.1.0"

__all__ = [
    "AsyncMode",
    "BadState",
    "BaseConnection",
    "Body",
    "BufferLike",
    "Closed",
    "ConnectTimeout",
    "ConnectionClosed",
    "Connection",
    "ConnectionRefused",
    "Error",
    "Event",
    "ForkError",
    "EventKind",
    "TraceEvent",
    "Header",
    "Headers",
    "HeadersIn",
    "InternalError",
    "InvalidArgument",
    "Managed",
    "NoMemory",
    "NoStream",
    "NotUp",
    "OptionError",
    "ProtocolError",
    "Queue",
    "SSEEvent",
    "SSEStream",
    "QueueClosed",
    "WouldBlock",
    "RawStream",
    "Received",
    "Response",
    "StrOrBytes",
    "SyncMode",
    "TLSError",
    "StreamClosed",
    "StreamError",
    "StreamTimeout",
    "Timeout",
    "TunnelRefused",
    "Unsupported",
    "UpgradeRejected",
    "WSFrame",
    "WebSocket",
    "WSMessage",
    "WSOpcode",
    "__version__",
    "live_handles",
    "open",
    "open_unix",
    "open_fd",
    "open_raw",
    "open_raw_unix",
    "strerror",
    "tls_session_cache",
    "version",
]
