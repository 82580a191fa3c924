"""Evidence (snapshots, recordings) as encrypted files, indexed in the database."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import sqlalchemy as sa

from signaling import db
from signaling.cases import CaseStore
from signaling.errors import ApiError
from signaling.vault import EncryptedWriter, StreamReader, Vault

logger = logging.getLogger(__name__)


class EvidenceStore:
    def __init__(self, root: Path, vault: Vault, store: CaseStore) -> None:
        self.root = root
        self.vault = vault
        self.store = store

    def _path(self, case_id: str, evidence_id: str) -> Path:
        return self.root / case_id / f"{evidence_id}.enc"

    def _context(self, case_id: str, evidence_id: str) -> str:
        return f"evidence/{case_id}/{evidence_id}"

    async def add(
        self,
        case_id: str,
        kind: str,
        media_type: str,
        data: bytes,
        width: int | None = None,
        height: int | None = None,
        agent_id: int | None = None,
    ) -> str:
        evidence_id = uuid.uuid4().hex
        path = self._path(case_id, evidence_id)
        self.vault.write_file(path, data, self._context(case_id, evidence_id))
        now = db.utcnow_iso(self.store.now())
        async with self.store.engine.begin() as conn:
            await conn.execute(
                db.evidence.insert().values(
                    id=evidence_id,
                    case_id=case_id,
                    kind=kind,
                    media_type=media_type,
                    width=width,
                    height=height,
                    bytes=len(data),
                    path=str(path.relative_to(self.root)),
                    agent_id=agent_id,
                    created_at=now,
                    completed_at=now,
                )
            )
        return evidence_id

    async def open_stream(
        self, case_id: str, kind: str, media_type: str
    ) -> tuple[str, EncryptedWriter]:
        """A new evidence item written as a stream (a recording); finish() it after."""
        evidence_id = uuid.uuid4().hex
        path = self._path(case_id, evidence_id)
        writer = self.vault.writer(path, self._context(case_id, evidence_id))
        async with self.store.engine.begin() as conn:
            await conn.execute(
                db.evidence.insert().values(
                    id=evidence_id,
                    case_id=case_id,
                    kind=kind,
                    media_type=media_type,
                    path=str(path.relative_to(self.root)),
                    created_at=db.utcnow_iso(self.store.now()),
                )
            )
        return evidence_id, writer

    async def finish(self, evidence_id: str, size: int) -> None:
        async with self.store.engine.begin() as conn:
            await conn.execute(
                db.evidence.update()
                .where(db.evidence.c.id == evidence_id)
                .values(bytes=size, completed_at=db.utcnow_iso(self.store.now()))
            )

    async def meta(self, evidence_id: str) -> sa.Row:
        async with self.store.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(db.evidence).where(db.evidence.c.id == evidence_id)
                )
            ).first()
        if row is None:
            raise ApiError(404, "evidence_not_found", f"no evidence {evidence_id!r}")
        return row

    async def list(self, case_id: str) -> list[sa.Row]:
        async with self.store.engine.connect() as conn:
            return list(
                await conn.execute(
                    sa.select(db.evidence)
                    .where(db.evidence.c.case_id == case_id)
                    .order_by(db.evidence.c.created_at)
                )
            )

    def read(self, row: sa.Row) -> bytes:
        return self.vault.read_file(
            self.root / row.path, self._context(row.case_id, row.id)
        )

    def iter_plain(self, row: sa.Row):  # type: ignore[no-untyped-def]
        return self.vault.iter_file(
            self.root / row.path, self._context(row.case_id, row.id)
        )

    def salvage(self, row: sa.Row) -> StreamReader:
        """A reader for a stream that may have been cut off by a crash."""
        return self.vault.salvage(
            self.root / row.path, self._context(row.case_id, row.id)
        )

    async def close_interrupted(self) -> int:
        """After a crash: mark recordings that were never finished, with their size."""
        async with self.store.engine.begin() as conn:
            rows = (
                await conn.execute(
                    sa.select(db.evidence).where(db.evidence.c.completed_at.is_(None))
                )
            ).all()
            for row in rows:
                path = self.root / row.path
                size = path.stat().st_size if path.exists() else 0
                await conn.execute(
                    db.evidence.update()
                    .where(db.evidence.c.id == row.id)
                    .values(bytes=size, completed_at=db.utcnow_iso(self.store.now()))
                )
                logger.warning(
                    "case %s x recording %s was cut off by a restart (%d bytes kept)",
                    row.case_id,
                    row.id,
                    size,
                )
        return len(rows)


async def delete_evidence(
    evidence: EvidenceStore, case_id: str, kinds: set[str]
) -> int:
    """Delete the files and rows of a case's evidence of the given kinds."""
    removed = 0
    for row in await evidence.list(case_id):
        if row.kind not in kinds:
            continue
        (evidence.root / row.path).unlink(missing_ok=True)
        async with evidence.store.engine.begin() as conn:
            await conn.execute(db.evidence.delete().where(db.evidence.c.id == row.id))
        removed += 1
    return removed
