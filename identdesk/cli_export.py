"""`identdesk recording export` and `identdesk evidence export`: decrypt on demand."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import secrets
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from identdesk.app import build_services
from identdesk.cli import (
    InputError,
    guard,
    remove_file,
    write_problem,
    write_reason,
)
from identdesk.cli_serve import settings_from
from media.remux import remux
from signaling.cases import State
from signaling.errors import ApiError
from signaling.services import Services
from signaling.vault import VaultError

EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "video/x-matroska": ".mkv",
    "application/json": ".json",
}


def register(commands: Any) -> None:
    rec = commands.group("recording", "work with call recordings")
    export = rec.add_parser(
        "export", help="decrypt a case's recordings to seekable .mkv files"
    )
    export.add_argument("case_id")
    export.add_argument("output", type=Path, help="OUT.mkv (OUT-2.mkv ... for more)")
    _common(export)
    export.set_defaults(func=guard(cmd_recording_export))

    evidence = commands.group("evidence", "work with a case's evidence")
    dump = evidence.add_parser(
        "export", help="decrypt all of a case's evidence (snapshots, recordings) to DIR"
    )
    dump.add_argument("case_id")
    dump.add_argument("directory", type=Path)
    _common(dump)
    dump.set_defaults(func=guard(cmd_evidence_export))


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, help="data folder (default ./data)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="export evidence blocked after a withdrawal (legal hold) anyway",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace output files that exist (refused otherwise)",
    )


class _ChunkReader(io.RawIOBase):
    """A readable file over decrypted chunks, so libav can demux the recording."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            self._buffer = next(self._chunks, b"")
            if not self._buffer:
                return 0
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


async def _rows(svc: Services, args: argparse.Namespace, kinds: set[str] | None):  # type: ignore[no-untyped-def]
    """The case's evidence rows, or None after printing why there are none."""
    try:
        case = await svc.store.get(args.case_id)
    except ApiError:
        where = svc.settings.data_dir
        print(f"error: no case {args.case_id} in {where}", file=sys.stderr)
        return None
    if case.state == State.WITHDRAWN and not args.force:
        print(
            f"error: consent for case {case.id} was withdrawn; what is left is blocked "
            "(legal hold). Use --force only for that legal purpose.",
            file=sys.stderr,
        )
        return None
    rows = [
        r for r in await svc.evidence.list(case.id) if kinds is None or r.kind in kinds
    ]
    if not rows:
        what = "recording" if kinds else "evidence"
        print(f"error: case {case.id} has no {what}", file=sys.stderr)
        return None
    return rows


def _partial(path: Path) -> Path:
    """A hidden name beside `path` with its suffix (libav picks the format by it)."""
    return path.with_name(f".{path.stem}.{secrets.token_hex(4)}.part{path.suffix}")


def export_item(svc: Services, row: Any, path: Path, overwrite: bool = False) -> str:
    """Decrypt one item to `path` through a partial file renamed at the end, so a
    failed export leaves nothing half-written; returns a one-line description."""
    partial = _partial(path)
    try:
        text = _decrypt_to(svc, row, partial, path.name)
        if not overwrite and path.exists():
            raise FileExistsError(0, "it appeared during the export", str(path))
        os.replace(partial, path)
    finally:
        remove_file(partial)
    return text


def _decrypt_to(svc: Services, row: Any, path: Path, name: str) -> str:
    if row.kind == "recording":
        reader = svc.evidence.salvage(row)
        figures = remux(_ChunkReader(reader), path)
        text = (
            f"{figures['seconds']:.1f} s, {figures['video']} video and "
            f"{figures['audio']} audio packets"
        )
        if reader.truncated:
            _warn(
                f"{name}: the recording was cut off (the server stopped during "
                "the call); exported the part that was saved"
            )
        return text
    with open(path, "wb") as out:
        for chunk in svc.evidence.iter_plain(row):
            out.write(chunk)
    return f"{row.width}x{row.height}" if row.width else f"{row.bytes} bytes"


def refuse_existing(paths: list[Path], overwrite: bool) -> None:
    """Outputs that exist are replaced only with --overwrite."""
    existing = [p for p in paths if os.path.lexists(p)]
    if existing and not overwrite:
        names = ", ".join(repr(str(p)) for p in existing)
        raise InputError(
            f"will not overwrite {names}: give --overwrite to replace "
            f"{'it' if len(existing) == 1 else 'them'}"
        )
    for p in existing:
        if p.is_dir():
            raise InputError(f"cannot write {str(p)!r}: it is a folder")


def _output_folder(folder: Path, create: bool = True) -> None:
    """`folder` is (or with `create` becomes) a folder, or InputError says why
    not."""
    if folder.exists() and not folder.is_dir():
        raise InputError(
            f"cannot export to {str(folder)!r}: it is a file, not a folder"
        )
    if not create:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = write_reason(exc, folder)
        raise InputError(f"cannot create folder {str(folder)!r}: {reason}") from None


def _export_all(
    svc: Services, rows: list[Any], paths: list[Path], overwrite: bool
) -> int:
    failures = 0
    for row, path in zip(rows, paths, strict=True):
        try:
            text = export_item(svc, row, path, overwrite)
        except OSError as exc:
            _warn(
                f"{row.kind} {row.id} not written to {path}: {write_reason(exc, path)}"
            )
            failures += 1
            continue
        except (VaultError, ValueError) as exc:
            _warn(f"{row.kind} {row.id} could not be exported: {exc}")
            failures += 1
            continue
        print(f"{path}  {row.kind} {text}")
    return 1 if failures else 0


def _open_existing(args: argparse.Namespace) -> bool:
    settings = settings_from(args)
    db_file = settings.data_dir / "identdesk.sqlite3"
    if not settings.database_url and not db_file.exists():
        print(f"error: no identdesk data in {settings.data_dir}", file=sys.stderr)
        return False
    return True


def cmd_recording_export(args: argparse.Namespace) -> int:
    if not _open_existing(args):
        return 1
    problem = write_problem(args.output)
    if problem:
        raise InputError(f"cannot write {str(args.output)!r}: {problem}")

    async def run() -> int:
        svc = await build_services(settings_from(args))
        try:
            rows = await _rows(svc, args, {"recording"})
            if rows is None:
                return 1
            out: Path = args.output
            paths = [
                out if i == 0 else out.with_name(f"{out.stem}-{i + 1}{out.suffix}")
                for i in range(len(rows))
            ]
            refuse_existing(paths, args.overwrite)
            if len(rows) > 1:
                print(f"case {args.case_id} has {len(rows)} recordings (call resumed)")
            return _export_all(svc, rows, paths, args.overwrite)
        finally:
            await svc.engine.dispose()

    return asyncio.run(run())


def cmd_evidence_export(args: argparse.Namespace) -> int:
    if not _open_existing(args):
        return 1
    _output_folder(args.directory, create=False)

    async def run() -> int:
        svc = await build_services(settings_from(args))
        try:
            rows = await _rows(svc, args, None)
            if rows is None:
                return 1
            paths = [
                args.directory
                / f"{i:02d}-{r.kind}{EXTENSIONS.get(r.media_type, '.bin')}"
                for i, r in enumerate(rows, 1)
            ]
            refuse_existing(paths, args.overwrite)
            _output_folder(args.directory)
            return _export_all(svc, rows, paths, args.overwrite)
        finally:
            await svc.engine.dispose()

    return asyncio.run(run())
