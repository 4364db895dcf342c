"""The response object shared by the sync and asyncio APIs, and its headers.

One class, :class:`Response`, for both: ``status``, ``headers`` (a
:class:`Headers`), ``trailers``, ``read()``, ``text()``, ``json()``. On a
sync connection the body methods return their value (blocking for the rest
of the body); on an asyncio connection they return a coroutine to await, as
aiohttp's do. The type parameter says which (``Response[SyncMode]`` /
``Response[AsyncMode]``), so a type checker knows whether to await.
"""

from __future__ import annotations

import codecs
import json
from typing import (
    TYPE_CHECKING,
    Any,
    AsyncIterator,
    Coroutine,
    Generic,
    Iterable,
    Iterator,
    List,
    Optional,
    SupportsIndex,
    TypeVar,
    Union,
    overload,
)

from ._errors import Closed, stream_error
from ._events import Event, EventKind, Header

if TYPE_CHECKING:
    from ._core import Connection as SyncConnection

_DATA = EventKind.DATA
_TRAILERS = EventKind.TRAILERS
_ERROR = EventKind.ERROR
_PUSH = EventKind.PUSH
_SSE = EventKind.SSE
SSE_BODY = "badarg: the body is delivered as SSE events (content_handlers gun_sse_h), not DATA: iterate them"


class Headers(List[Header]):
    """Response headers or trailers: the ``(name, value)`` str pairs Gun
    gives, in order, names lower case (a list: iteration, ``len``, indexing
    and ``==`` with a list of pairs work as on one), and a case-insensitive
    multi-value mapping on top:

    - ``h["Content-Type"]``: the first value (KeyError when absent)
    - ``h.get(name, default=None)``, ``h.get_all(name)`` → every value
    - ``"content-type" in h`` (a name, any case); ``(name, value) in h`` (a pair)
    - ``h.keys()`` (names, first occurrence order), ``h.items()`` (the pairs)
    """

    __slots__ = ()

    @overload
    def __getitem__(self, key: SupportsIndex) -> Header: ...

    @overload
    def __getitem__(self, key: slice) -> List[Header]: ...

    @overload
    def __getitem__(self, key: str) -> str: ...

    def __getitem__(self, key: Union[SupportsIndex, slice, str]) -> Union[Header, List[Header], str]:
        if isinstance(key, str):
            n = key.lower()
            for k, v in list.__iter__(self):
                if k == n:
                    return v
            raise KeyError(key)
        return list.__getitem__(self, key)

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The first value of header `name` (any case), or `default`."""
        n = name.lower()
        for k, v in list.__iter__(self):
            if k == n:
                return v
        return default

    def get_all(self, name: str) -> List[str]:
        """Every value of header `name` (any case), in order."""
        n = name.lower()
        return [v for k, v in list.__iter__(self) if k == n]

    def __contains__(self, item: object) -> bool:
        if isinstance(item, str):
            n = item.lower()
            return any(k == n for k, _ in list.__iter__(self))
        return list.__contains__(self, item)

    def keys(self) -> List[str]:
        seen: List[str] = []
        for k, _ in list.__iter__(self):
            if k not in seen:
                seen.append(k)
        return seen

    def items(self) -> List[Header]:
        return list(self)

    def __repr__(self) -> str:
        return f"Headers({list.__repr__(self)})"


class SyncMode:
    """Type marker: a Response of a sync connection (body methods return values)."""


class AsyncMode:
    """Type marker: a Response of an asyncio connection (body methods are awaited)."""


_M = TypeVar("_M", SyncMode, AsyncMode)


def charset(headers: Iterable[Header]) -> Optional[str]:
    """The charset parameter of the content-type, if Python knows it."""
    for k, v in headers:
        if k == "content-type":
            for param in v.split(";")[1:]:
                name, _, val = param.partition("=")
                if name.strip().lower() == "charset":
                    cs = val.strip().strip('"').strip("'")
                    try:
                        return codecs.lookup(cs).name
                    except LookupError:
                        return None
            return None
    return None


class Response(Generic[_M]):
    """A response: ``status`` and ``headers`` are there when it is
    returned; the body comes with ``read()`` (bytes), ``text()`` (str, in
    the content-type's charset, UTF-8 by default), ``json()``, or chunk by
    chunk with ``for chunk in resp`` (sync) / ``async for chunk in resp``
    (asyncio). On an asyncio connection ``read()``, ``text()`` and
    ``json()`` are awaited.

    - ``ref``: the stream (Gun's StreamRef)
    - ``headers`` / ``trailers``: :class:`Headers` (trailers are filled at
      the end of the body)
    - ``informs``: the 1xx responses that came first (events);
      ``pushes``: the PUSH events
    - ``done``: True once the body has all been taken (or the stream was
      cancelled)

    ``read()`` keeps the body: ``read()``, ``text()`` and ``json()`` may be
    called again (they give what iteration had not taken). ``close()`` (or
    leaving ``with`` / ``async with``) cancels the stream if its body has
    not all arrived; so does garbage collection.
    """

    def __init__(self, conn: Any, ref: int, status: int, headers: Optional[List[Header]], fin: bool,
                 informs: List[Event], pushes: List[Event], head: Optional[Event] = None,
                 stream: Any = None, timeout: Optional[float] = None,
                 first: Optional[Event] = None) -> None:
        self._conn = conn
        self._stream = stream  # the asyncio connection's _Stream; None on a sync connection
        self._timeout = timeout  # sync: the bound of each wait
        self._first = first  # sync: a body event taken while looking for the head
        self.ref = ref
        self.status = status
        # With `head` (the RESPONSE event), headers are decoded on first use.
        self._headers: Optional[Headers] = Headers(headers or ()) if head is None else None
        self._head = head
        self.trailers: Headers = Headers()
        self.informs = informs
        self.pushes = pushes
        self.done = fin
        self._content: Optional[bytes] = None

    # ---- the head

    @property
    def headers(self) -> Headers:
        """The response's headers (see :class:`Headers`)."""
        h = self._headers
        if h is None:
            ev = self._head
            h = self._headers = Headers(ev.headers if ev is not None else ())
            self._head = None
        return h

    @headers.setter
    def headers(self, value: Iterable[Header]) -> None:
        self._headers = value if isinstance(value, Headers) else Headers(value)
        self._head = None

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The first value of header `name` (case-insensitive)."""
        return self.headers.get(name, default)

    @property
    def charset(self) -> Optional[str]:
        """The content-type's charset (a codec name Python knows), or None."""
        return charset(self.headers)

    # ---- one body event (sync and asyncio)

    def _step(self, ev: Event) -> Optional[bytes]:
        """Takes one event of the body: its bytes (None if it had none)."""
        k = ev.kind
        if k == _DATA:
            if ev.fin:
                self.done = True
            return ev.data or None
        if k == _TRAILERS:
            self.trailers = Headers(ev.headers)
            self.done = True
        elif k == _ERROR:
            self.done = True
            raise stream_error(ev.reason or "error")
        elif k == _PUSH:
            self.pushes.append(ev)
        elif k == _SSE:
            self.done = True
            raise stream_error(SSE_BODY)
        return None

    # ---- sync

    def _sync_next(self) -> Optional[bytes]:
        ev = self._first
        if ev is not None:
            self._first = None
        else:
            conn: SyncConnection = self._conn
            ev = conn.await_(self.ref, self._timeout)
        return self._step(ev)

    def _sync_read(self) -> bytes:
        chunks: List[bytes] = []
        while not self.done:
            b = self._sync_next()
            if b is not None:
                chunks.append(b)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def __iter__(self: "Response[SyncMode]") -> Iterator[bytes]:
        """Sync: the body's chunks as they come."""
        if self._stream is not None:
            raise TypeError("an asyncio Response: use `async for chunk in resp`")
        while not self.done:
            b = self._sync_next()
            if b is not None:
                yield b

    # ---- asyncio

    def __aiter__(self: "Response[AsyncMode]") -> AsyncIterator[bytes]:
        if self._stream is None:
            raise TypeError("a sync Response: use `for chunk in resp`")
        return self

    async def __anext__(self) -> bytes:
        st = self._stream
        while not self.done:
            ev = st.pop() if st.events else await st.next(None)
            b = self._step(ev)
            if b is not None:
                return b
        raise StopAsyncIteration

    async def _aread(self) -> bytes:
        if self._content is not None:
            return self._content
        st = self._stream
        evs = st.events
        if len(evs) == 1 and not self.done:
            # The usual small body: one DATA fin, already there (st.pop(),
            # inline: a DATA fin takes no flow).
            ev = evs[0]
            if ev.kind == _DATA and ev.fin:
                evs.popleft()
                self.done = True
                streams = self._conn._streams
                if streams.get(st.ref) is st:
                    del streams[st.ref]
                data: bytes = ev.data
                self._content = data
                return data
        chunks: List[bytes] = []
        while not self.done:
            if not st.events:
                await st.wait(None)
            b = self._step(st.pop())
            if b is not None:
                chunks.append(b)
        body = self._content = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return body

    async def _atext(self, encoding: Optional[str], errors: str) -> str:
        return self._decode(await self._aread(), encoding, errors)

    async def _ajson(self) -> Any:
        return json.loads(await self._aread())

    # ---- the body, either way

    def _read_keep(self) -> bytes:
        if self._content is None:
            self._content = self._sync_read()
        return self._content

    def _decode(self, body: bytes, encoding: Optional[str], errors: str) -> str:
        return body.decode(encoding or self.charset or "utf-8", errors)

    @overload
    def read(self: "Response[SyncMode]") -> bytes: ...

    @overload
    def read(self: "Response[AsyncMode]") -> Coroutine[Any, Any, bytes]: ...

    def read(self) -> Any:
        """The body (the part that iteration has not taken), kept: a second
        call gives it again. Asyncio: ``await resp.read()``."""
        if self._stream is not None:
            return self._aread()
        return self._read_keep()

    @overload
    def text(self: "Response[SyncMode]", encoding: Optional[str] = None, errors: str = "strict") -> str: ...

    @overload
    def text(self: "Response[AsyncMode]", encoding: Optional[str] = None,
             errors: str = "strict") -> Coroutine[Any, Any, str]: ...

    def text(self, encoding: Optional[str] = None, errors: str = "strict") -> Any:
        """The body as str: decoded with `encoding`, else the content-type's
        charset, else UTF-8. Asyncio: ``await resp.text()``."""
        if self._stream is not None:
            return self._atext(encoding, errors)
        return self._decode(self._read_keep(), encoding, errors)

    @overload
    def json(self: "Response[SyncMode]") -> Any: ...

    @overload
    def json(self: "Response[AsyncMode]") -> Coroutine[Any, Any, Any]: ...

    def json(self) -> Any:
        """The body parsed as JSON (UTF-8, -16 or -32, as json.loads
        detects). Asyncio: ``await resp.json()``."""
        if self._stream is not None:
            return self._ajson()
        return json.loads(self._read_keep())

    # ---- ending

    def close(self) -> None:
        """Cancels the stream if its body has not all arrived (its events
        still queued are dropped)."""
        self._end(True)

    cancel = close

    def _end(self, flush_held: bool) -> None:
        if self.done:
            return
        self.done = True
        self._first = None
        st = self._stream
        if st is not None:
            self._conn._cancel_stream(st)
            return
        conn = self._conn
        if conn._handle is None:
            return
        try:
            conn.cancel(self.ref)
            # Gun's cancel + flush: nothing of it stays queued. From __del__
            # only the library's queue is flushed (a C call): the Python
            # Queue's lock may be held by this very thread when the
            # collector runs.
            if flush_held:
                conn.queue.flush(self.ref)
            else:
                conn.queue._flush_library(self.ref)
        except Closed:
            pass

    def __del__(self) -> None:
        if not self.done:
            try:
                self._end(False)
            except Exception:
                pass

    def __enter__(self) -> "Response[_M]":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> "Response[_M]":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mod = "gunmetal" if self._stream is None else "gunmetal.aio"
        return f"<{mod}.Response ref={self.ref} status={self.status}>"
