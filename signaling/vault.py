"""Encryption at rest: small records with AES-256-GCM, large files as a chunked stream.

Every secret object is bound to its identity through the associated data, so a
ciphertext copied to another row or file does not decrypt. Keys derive from one
master key (HKDF-SHA256, RFC 5869) that lives outside the database.
"""

from __future__ import annotations

import base64
import os
import secrets
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

RECORD_MAGIC = b"IDR1"
STREAM_MAGIC = b"IDS1"
CHUNK = 64 * 1024
NONCE_PREFIX = 7  # bytes; + 4-byte counter + 1-byte last-chunk flag = 96-bit nonce
FLUSH_SECONDS = 0.5


class VaultError(Exception):
    """A ciphertext failed to authenticate or is not in our format."""


def load_master_key(data_dir: Path, configured: str = "") -> bytes:
    """The master key from configuration, else from data_dir/keys, created once."""
    if configured:
        try:
            key = base64.urlsafe_b64decode(configured + "=" * (-len(configured) % 4))
        except ValueError:
            key = b""
        if len(key) != 32:
            raise ValueError("IDENTDESK_MASTER_KEY must be 32 bytes, base64url encoded")
        return key
    path = data_dir / "keys" / "master.key"
    if path.exists():
        return base64.urlsafe_b64decode(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(base64.urlsafe_b64encode(key).decode())
    return key


class Vault:
    """Encrypts records and files under keys derived from the master key."""

    def __init__(self, master_key: bytes) -> None:
        self._master = master_key
        self._records = AESGCM(self.derive(b"records"))
        self._files = AESGCM(self.derive(b"files"))

    def derive(self, purpose: bytes) -> bytes:
        return HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=None,
            info=b"identdesk " + purpose,
        ).derive(self._master)

    def seal(self, plaintext: bytes, context: str) -> bytes:
        nonce = secrets.token_bytes(12)
        sealed = self._records.encrypt(nonce, plaintext, context.encode())
        return RECORD_MAGIC + nonce + sealed

    def open(self, sealed: bytes, context: str) -> bytes:
        if not sealed.startswith(RECORD_MAGIC):
            raise VaultError("not an identdesk record")
        nonce, body = sealed[4:16], sealed[16:]
        try:
            return self._records.decrypt(nonce, body, context.encode())
        except InvalidTag as exc:
            raise VaultError(f"record for {context!r} does not authenticate") from exc

    def writer(self, path: Path, context: str) -> EncryptedWriter:
        return EncryptedWriter(path, self._files, context)

    def write_file(self, path: Path, data: bytes, context: str) -> None:
        with self.writer(path, context) as out:
            out.write(data)

    def read_file(self, path: Path, context: str) -> bytes:
        return b"".join(self.iter_file(path, context))

    def iter_file(self, path: Path, context: str) -> Iterator[bytes]:
        """Decrypted chunks of a file; raises VaultError on tampering or truncation."""
        return iter(StreamReader(self._files, path, context))

    def salvage(self, path: Path, context: str) -> StreamReader:
        """A reader that also accepts a stream cut off by a crash; see `truncated`."""
        return StreamReader(self._files, path, context, allow_truncated=True)


class StreamReader:
    """Decrypts an encrypted stream chunk by chunk.

    With `allow_truncated`, a stream whose writer died (no last-chunk flag, or a
    partly written final chunk) yields every complete chunk and sets `truncated`;
    a chunk that fails to authenticate anywhere else still raises VaultError.
    """

    def __init__(
        self, aead: AESGCM, path: Path, context: str, allow_truncated: bool = False
    ) -> None:
        self._aead = aead
        self.path = path
        self._context = context
        self._allow_truncated = allow_truncated
        self.truncated = False

    def __iter__(self) -> Iterator[bytes]:
        with open(self.path, "rb") as src:
            header = src.read(4 + NONCE_PREFIX)
            if len(header) != 4 + NONCE_PREFIX or not header.startswith(STREAM_MAGIC):
                raise VaultError(f"{self.path.name} is not an identdesk encrypted file")
            prefix = header[4:]
            aad = header + self._context.encode()
            counter = 0
            while True:
                sealed = self._next(src, counter)
                if sealed is None:
                    return
                plain, last = self._open(prefix, counter, sealed, aad)
                if last and src.read(1):
                    raise VaultError(f"{self.path.name} has data after its last chunk")
                yield plain
                if last:
                    return
                counter += 1

    def _next(self, src: BinaryIO, counter: int) -> bytes | None:
        """The next sealed chunk, or None where a dead writer left off."""
        size_field = src.read(4)
        if len(size_field) == 4:
            (size,) = struct.unpack(">I", size_field)
            if size > CHUNK + 16:
                raise VaultError(f"{self.path.name} chunk {counter} has a bad length")
            sealed = src.read(size)
            if len(sealed) == size:
                return sealed
        if not self._allow_truncated:
            raise VaultError(f"{self.path.name} is cut off after chunk {counter - 1}")
        self.truncated = True
        return None

    def _open(
        self, prefix: bytes, counter: int, sealed: bytes, aad: bytes
    ) -> tuple[bytes, bool]:
        for last in (False, True):
            nonce = prefix + struct.pack(">IB", counter, int(last))
            try:
                return self._aead.decrypt(nonce, sealed, aad), last
            except InvalidTag:
                continue
        raise VaultError(f"{self.path.name} chunk {counter} does not authenticate")


class EncryptedWriter:
    """A write-only, non-seekable file that encrypts as it goes (STREAM construction).

    Each chunk is stored as its length and its sealed bytes; the last chunk carries
    a flag in its nonce, so a truncated file is detected. Chunks go out when full
    or after FLUSH_SECONDS, so a crash loses at most that much of a recording.
    """

    def __init__(self, path: Path, aead: AESGCM, context: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._aead = aead
        self._prefix = secrets.token_bytes(NONCE_PREFIX)
        header = STREAM_MAGIC + self._prefix
        self._aad = header + context.encode()
        # unbuffered: each sealed chunk reaches the kernel at once
        self._out: BinaryIO = open(path, "wb", buffering=0)  # noqa: SIM115
        self._out.write(header)
        self._buffer = bytearray()
        self._counter = 0
        self._emitted_at = time.monotonic()
        self.closed = False
        self.plaintext_bytes = 0

    def __enter__(self) -> EncryptedWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, data: bytes) -> int:
        if self.closed:
            raise ValueError("write to a closed encrypted file")
        self._buffer += data
        self.plaintext_bytes += len(data)
        while len(self._buffer) >= CHUNK:
            self._emit(bytes(self._buffer[:CHUNK]), last=False)
            del self._buffer[:CHUNK]
        if self._buffer and time.monotonic() - self._emitted_at > FLUSH_SECONDS:
            self._emit(bytes(self._buffer), last=False)
            self._buffer.clear()
        return len(data)

    def _emit(self, chunk: bytes, last: bool) -> None:
        nonce = self._prefix + struct.pack(">IB", self._counter, 1 if last else 0)
        sealed = self._aead.encrypt(nonce, chunk, self._aad)
        self._out.write(struct.pack(">I", len(sealed)) + sealed)
        self._counter += 1
        self._emitted_at = time.monotonic()

    def flush(self) -> None:
        self._out.flush()

    def close(self) -> None:
        if self.closed:
            return
        self._emit(bytes(self._buffer), last=True)
        self._buffer.clear()
        self._out.close()
        self.closed = True
