"""Messages between the server and its media workers, over a local socket pair.

Each message is a JSON header and an optional binary body (a decoded frame, a
piece of recording), framed as two big-endian lengths. The socket pair is
created by the server and inherited by the worker; nothing listens on an address.
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

_LENGTHS = struct.Struct(">II")
# a header is small; a body is at most a 4K frame in YUV 4:2:0 or a recording piece
MAX_HEADER = 1 << 20
MAX_BODY = 64 << 20


class ProtocolError(RuntimeError):
    """The other side sent something that is not a message of this protocol."""


def pack_parts(
    header: dict[str, Any], body: bytes | memoryview = b""
) -> tuple[bytes, bytes | memoryview]:
    """A message as its framed header and its body, to be written in order."""
    head = json.dumps(header, separators=(",", ":")).encode()
    return _LENGTHS.pack(len(head), len(body)) + head, body


def pack(header: dict[str, Any], body: bytes | memoryview = b"") -> bytes:
    head, body = pack_parts(header, body)
    return head + bytes(body)


async def read_message(
    reader: asyncio.StreamReader,
) -> tuple[dict[str, Any], bytes] | None:
    """The next message, or None at the end of the stream."""
    try:
        lengths = await reader.readexactly(_LENGTHS.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ProtocolError("the stream ended inside a message") from exc
        return None
    head_len, body_len = _LENGTHS.unpack(lengths)
    if head_len > MAX_HEADER or body_len > MAX_BODY:
        raise ProtocolError(f"message too large ({head_len} + {body_len} bytes)")
    try:
        head = await reader.readexactly(head_len)
        body = await reader.readexactly(body_len) if body_len else b""
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError("the stream ended inside a message") from exc
    header = json.loads(head)
    if not isinstance(header, dict):
        raise ProtocolError("a message header must be a JSON object")
    return header, body
