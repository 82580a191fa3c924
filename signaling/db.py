"""The database: SQLAlchemy Core tables, an async engine, ordered schema migrations.

SQLite (aiosqlite) is the embedded default; PostgreSQL (asyncpg) takes the same
schema. Timestamps are ISO 8601 strings in UTC so both sort them the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

logger = logging.getLogger(__name__)

metadata = sa.MetaData()

partners = sa.Table(
    "partners",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("api_key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.String(40), nullable=False),
)

agents = sa.Table(
    "agents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("role", sa.String(20), nullable=False, server_default="agent"),
    sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"),
    sa.Column("locked_until", sa.String(40)),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("session_epoch", sa.Integer, nullable=False, server_default="0"),
)

cases = sa.Table(
    "cases",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("partner_id", sa.String(64), sa.ForeignKey("partners.id"), index=True),
    sa.Column("reference", sa.String(200)),
    sa.Column("state", sa.String(20), nullable=False, index=True),
    sa.Column("identity_enc", sa.LargeBinary, nullable=False),
    sa.Column("email_enc", sa.LargeBinary, nullable=False),
    sa.Column("locale", sa.String(8), nullable=False, server_default="de"),
    sa.Column("callback_url", sa.String(2000)),
    sa.Column("activation_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("activation_expires", sa.String(40), nullable=False),
    sa.Column("tan_hash", sa.String(64), unique=True),
    sa.Column("tan_expires", sa.String(40)),
    sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id")),
    sa.Column("decision", sa.String(20)),
    sa.Column("reason_code", sa.String(60)),
    sa.Column("note_enc", sa.LargeBinary),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
)

case_events = sa.Table(
    "case_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.String(64), sa.ForeignKey("cases.id"), index=True),
    sa.Column("at", sa.String(40), nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("from_state", sa.String(20)),
    sa.Column("to_state", sa.String(20)),
    sa.Column("detail", sa.String(500)),
)

evidence = sa.Table(
    "evidence",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("case_id", sa.String(64), sa.ForeignKey("cases.id"), index=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("media_type", sa.String(60), nullable=False),
    sa.Column("width", sa.Integer),
    sa.Column("height", sa.Integer),
    sa.Column("bytes", sa.Integer),
    sa.Column("path", sa.String(500), nullable=False),
    sa.Column("agent_id", sa.Integer),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("completed_at", sa.String(40)),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.String(64), sa.ForeignKey("cases.id"), index=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_status", sa.String(200)),
    sa.Column("next_at", sa.String(40)),
    sa.Column("delivered_at", sa.String(40)),
    sa.Column("created_at", sa.String(40), nullable=False),
)

schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("applied_at", sa.String(40), nullable=False),
)


def _initial(conn: Connection) -> None:
    metadata.create_all(conn, tables=[partners, agents, cases, case_events])


def _evidence_and_deliveries(conn: Connection) -> None:
    metadata.create_all(conn, tables=[evidence, deliveries])


def _session_epoch(conn: Connection) -> None:
    # bumped at logout: every session cookie issued before stops working
    columns = {c["name"] for c in sa.inspect(conn).get_columns("agents")}
    if "session_epoch" in columns:  # created by migration 1 on a new database
        return
    conn.execute(
        sa.text(
            "ALTER TABLE agents ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0"
        )
    )


# Append only: a released migration is never edited, a new one is added.
MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "partners, agents, cases, case events", _initial),
    (2, "evidence and result deliveries", _evidence_and_deliveries),
    (3, "agent session epoch for logout", _session_epoch),
]


def utcnow_iso(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="milliseconds")


async def connect(url: str) -> AsyncEngine:
    """Open the database and bring its schema up to date."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()
    else:
        engine = create_async_engine(url, pool_pre_ping=True)
    async with engine.begin() as conn:
        await conn.run_sync(migrate)
    return engine


def migrate(conn: Connection) -> list[int]:
    """Apply pending migrations in order; returns the versions applied."""
    metadata.create_all(conn, tables=[schema_migrations])
    done = set(conn.execute(sa.select(schema_migrations.c.version)).scalars())
    applied = []
    for version, name, step in MIGRATIONS:
        if version in done:
            continue
        step(conn)
        conn.execute(
            schema_migrations.insert().values(
                version=version, name=name, applied_at=utcnow_iso()
            )
        )
        logger.info("- schema migration %d applied: %s", version, name)
        applied.append(version)
    return applied
