"""Reading a request to the embedded ClickHouse server: its body (decoded chunk by chunk), its
parameters (URL and multipart form fields) and its credentials; and the error every failure
becomes (ClickHouse's code and text)."""

from __future__ import annotations

import re
import zlib
from base64 import b64decode
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from multidict import MultiDict

_ERROR_CODE = re.compile(r"Code:\s*(\d+)")


class QueryError(Exception):
    """A failed query, carrying ClickHouse's error code and text."""

    def __init__(self, message: str, code: int | None = None) -> None:
        match = _ERROR_CODE.search(message)
        self.code = code if code is not None else int(match.group(1)) if match else 1001
        if not message.startswith("Code:"):
            message = f"Code: {self.code}. DB::Exception: {message}"
        super().__init__(message)


def _decompressor(encoding: str) -> Callable[[bytes], bytes] | None:
    """A decoder for request bodies that aiohttp does not decode itself (it does gzip, deflate,
    br and zstd): lz4, in the LZ4 frame format that clickhouse-connect writes."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity", "gzip", "x-gzip", "deflate", "br", "zstd"):
        return None
    if encoding == "lz4":
        return _Lz4Frames()
    raise QueryError(f"Unsupported Content-Encoding {encoding!r}", code=36)


class _Lz4Frames:
    """Decodes a stream of LZ4 frames. clickhouse-connect writes one frame per Native block, and
    one network chunk may end one frame and start the next: after a frame's end, the bytes left
    over start a new frame (dropping them would silently lose rows)."""

    def __init__(self) -> None:
        import lz4.frame

        self._new = lz4.frame.LZ4FrameDecompressor
        self._frame = self._new()

    def __call__(self, data: bytes) -> bytes:
        out = []
        while data:
            out.append(self._frame.decompress(data))
            if not self._frame.eof:
                break
            data = self._frame.unused_data
            self._frame = self._new()
        return b"".join(out)


async def body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    decode = _decompressor(request.headers.get("Content-Encoding", ""))
    stream = request.content.iter_chunked(1 << 20)
    while True:
        try:
            chunk = await stream.__anext__()
            data = decode(chunk) if decode else chunk
        except StopAsyncIteration:
            return
        except (OSError, RuntimeError, ValueError, zlib.error, web.HTTPException) as exc:
            raise QueryError(f"Cannot decode the request body: {exc}", code=271) from exc
        if data:
            yield data


async def form_params(request: web.Request) -> MultiDict[str]:
    """URL parameters plus the text fields of a multipart body (clickhouse-connect sends long
    queries and bound parameters this way). File fields would be external data: not served."""
    merged: MultiDict[str] = MultiDict(request.query)
    for name, value in (await request.post()).items():
        if not isinstance(value, str):
            raise QueryError(
                f"External data ({name!r}) is not supported by the embedded server", code=48
            )
        merged[name] = value
    return merged


def credentials(request: web.Request) -> tuple[str, str]:
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("basic "):
        try:
            user, _, password = b64decode(auth[6:]).decode().partition(":")
        except ValueError as exc:
            raise QueryError("Malformed Basic authorization header", code=516) from exc
        return user, password
    user = request.headers.get("X-ClickHouse-User") or request.query.get("user") or "default"
    password = request.headers.get("X-ClickHouse-Key") or request.query.get("password") or ""
    return user, password
