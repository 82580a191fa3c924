"""Cases and their life cycle along the end user's path (MISSION.md)."""

from __future__ import annotations

import json
import logging
import math
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from signaling import db
from signaling.errors import ApiError
from signaling.tan import new_tan, normalize_tan, tan_digest
from signaling.vault import Vault

logger = logging.getLogger(__name__)


class State(StrEnum):
    CREATED = "created"
    ACTIVATED = "activated"
    CONSENTED = "consented"
    WAITING = "waiting"
    IN_CALL = "in_call"
    DECIDED = "decided"
    DELIVERED = "delivered"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


S = State
TRANSITIONS: dict[State, set[State]] = {
    S.CREATED: {S.ACTIVATED, S.EXPIRED, S.WITHDRAWN},
    S.ACTIVATED: {S.CONSENTED, S.EXPIRED, S.WITHDRAWN},
    S.CONSENTED: {S.WAITING, S.EXPIRED, S.WITHDRAWN},
    # the phone may leave the queue and come back
    S.WAITING: {S.IN_CALL, S.CONSENTED, S.EXPIRED, S.WITHDRAWN},
    # an agent who hangs up without deciding puts the case back in the queue
    S.IN_CALL: {S.DECIDED, S.WAITING, S.CONSENTED, S.WITHDRAWN},
    S.DECIDED: {S.DELIVERED, S.WITHDRAWN},
    S.DELIVERED: {S.WITHDRAWN},
    S.EXPIRED: set(),
    S.WITHDRAWN: set(),
}

# a user who lost the number consents again and gets a new one; the limits keep
# the activation link from minting numbers and mails without end
TAN_RESEND_INTERVAL = timedelta(minutes=10)
TAN_ISSUES_MAX = 5

DECISIONS = ("approve", "reject", "abort")
REASON_CODES: dict[str, tuple[str, ...]] = {
    "approve": ("ok",),
    "reject": (
        "document_invalid",
        "document_expired",
        "document_not_accepted",
        "face_mismatch",
        "data_mismatch",
        "security_features_failed",
        "suspected_fraud",
        "tan_failed",
    ),
    "abort": (
        "poor_video",
        "poor_audio",
        "poor_light",
        "connection_lost",
        "user_cancelled",
        "document_missing",
        "agent_in_doubt",
        "other",
    ),
}
SNAPSHOT_KINDS = ("front", "back", "face", "other")
# what the agent confirms, item by item, before an approval (the console's checklist):
# photo matches the person, hologram responds to light and tilt, MRZ and check
# digits, document valid, document number read out, data matches the case, code
# confirmed in the call (ticked by the console when the phone confirmed it)
APPROVAL_CHECKS = ("photo", "ovd", "mrz", "expiry", "number", "data", "tan")


@dataclass
class Case:
    id: str
    partner_id: str
    reference: str | None
    state: State
    locale: str
    callback_url: str | None
    agent_id: int | None
    decision: str | None
    reason_code: str | None
    created_at: str
    updated_at: str
    tan_expires: str | None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reference": self.reference,
            "state": self.state.value,
            "decision": self.decision,
            "reason_code": self.reason_code,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def _row_to_case(row: Any) -> Case:
    return Case(
        id=row.id,
        partner_id=row.partner_id,
        reference=row.reference,
        state=State(row.state),
        locale=row.locale,
        callback_url=row.callback_url,
        agent_id=row.agent_id,
        decision=row.decision,
        reason_code=row.reason_code,
        created_at=row.created_at,
        updated_at=row.updated_at,
        tan_expires=row.tan_expires,
    )


class CaseStore:
    """Persists cases; every state change is checked and written to the case log."""

    def __init__(self, engine: AsyncEngine, vault: Vault, settings: Any) -> None:
        self.engine = engine
        self.vault = vault
        self.settings = settings
        self._tan_key = vault.derive(b"tan")
        self._link_key = vault.derive(b"activation")

    def now(self) -> datetime:
        return self.settings.clock()

    # creation and look-up

    async def create(
        self,
        partner_id: str,
        identity: dict[str, Any],
        email: str,
        callback_url: str | None,
        reference: str | None,
        locale: str,
    ) -> tuple[Case, str]:
        """A new case and its activation token (shown once, stored hashed)."""
        case_id = str(uuid.uuid4())
        token = secrets.token_urlsafe(24)
        now = self.now()
        values = {
            "id": case_id,
            "partner_id": partner_id,
            "reference": reference,
            "state": State.CREATED.value,
            "identity_enc": self.vault.seal(json.dumps(identity).encode(), case_id),
            "email_enc": self.vault.seal(email.encode(), case_id + "/email"),
            "locale": locale,
            "callback_url": callback_url,
            "activation_hash": tan_digest(self._link_key, token),
            "activation_expires": db.utcnow_iso(now + self.settings.activation_ttl),
            "created_at": db.utcnow_iso(now),
            "updated_at": db.utcnow_iso(now),
        }
        async with self.engine.begin() as conn:
            await conn.execute(db.cases.insert().values(**values))
            await self._log(
                conn, case_id, f"partner:{partner_id}", "created", None, "created"
            )
        logger.info("case %s - created", case_id)
        return await self.get(case_id), token

    async def get(self, case_id: str) -> Case:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(sa.select(db.cases).where(db.cases.c.id == case_id))
            ).first()
        if row is None:
            raise ApiError(404, "case_not_found", f"no case with id {case_id!r}")
        return _row_to_case(row)

    async def get_for_partner(self, case_id: str, partner_id: str) -> Case:
        case = await self.get(case_id)
        if case.partner_id != partner_id:
            # the same answer as for a missing case: ids of others are not confirmed
            raise ApiError(404, "case_not_found", f"no case with id {case_id!r}")
        return case

    async def by_activation(self, token: str) -> Case:
        digest = tan_digest(self._link_key, token)
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(db.cases).where(db.cases.c.activation_hash == digest)
                )
            ).first()
        if row is None:
            raise ApiError(404, "link_unknown", "this activation link is not valid")
        if row.activation_expires < db.utcnow_iso(self.now()) and row.state in (
            State.CREATED,
            State.ACTIVATED,
        ):
            await self.transition(
                row.id, State.EXPIRED, "system", "activation link expired"
            )
            raise ApiError(410, "link_expired", "this activation link has expired")
        return _row_to_case(row)

    async def by_tan(self, text: str) -> Case:
        normalized = normalize_tan(text)
        if normalized is None:
            raise ApiError(
                400,
                "tan_malformed",
                "a transaction number has 10 letters and digits, e.g. K7M2Q-4XTRB",
            )
        digest = tan_digest(self._tan_key, normalized)
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(db.cases).where(db.cases.c.tan_hash == digest)
                )
            ).first()
        if row is None:
            raise ApiError(404, "tan_unknown", "this transaction number is not known")
        if row.tan_expires and row.tan_expires < db.utcnow_iso(self.now()):
            if row.state in (State.CONSENTED, State.WAITING):
                await self.transition(row.id, State.EXPIRED, "system", "tan expired")
            raise ApiError(410, "tan_expired", "this transaction number has expired")
        return _row_to_case(row)

    async def identity(self, case_id: str) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            sealed = (
                await conn.execute(
                    sa.select(db.cases.c.identity_enc).where(db.cases.c.id == case_id)
                )
            ).scalar_one()
        return json.loads(self.vault.open(sealed, case_id))

    async def email(self, case_id: str) -> str:
        async with self.engine.connect() as conn:
            sealed = (
                await conn.execute(
                    sa.select(db.cases.c.email_enc).where(db.cases.c.id == case_id)
                )
            ).scalar_one()
        return self.vault.open(sealed, case_id + "/email").decode()

    async def erase_personal_data(self, case_id: str) -> None:
        """Replace identity, e-mail and note by empty sealed values (withdrawal)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                db.cases.update()
                .where(db.cases.c.id == case_id)
                .values(
                    identity_enc=self.vault.seal(b"{}", case_id),
                    email_enc=self.vault.seal(b"", case_id + "/email"),
                    note_enc=None,
                    tan_hash=None,
                )
            )

    # the path

    async def consent(self, case_id: str) -> str:
        """Record consent and issue the transaction number (returned formatted).

        Consent given again sends a new number that voids the previous one, at
        most every `TAN_RESEND_INTERVAL` and `TAN_ISSUES_MAX` times in all."""
        issued = await self._tan_issues(case_id)
        if issued:
            self._check_resend(issued)
        tan = new_tan()
        normalized = normalize_tan(tan)
        assert normalized is not None
        detail = "terms accepted, processing and recording consented"
        if issued:
            detail = "transaction number sent again; the previous one is void"
        await self.transition(
            case_id,
            State.CONSENTED,
            "user",
            detail,
            tan_hash=tan_digest(self._tan_key, normalized),
            tan_expires=db.utcnow_iso(self.now() + self.settings.tan_ttl),
        )
        return tan

    async def _tan_issues(self, case_id: str) -> list[datetime]:
        """When transaction numbers were issued: consent from activated or again
        while consented (a restart's in_call -> consented issues none)."""
        ev = db.case_events.c
        query = sa.select(ev.at).where(
            ev.case_id == case_id,
            ev.action == "state",
            ev.to_state == State.CONSENTED.value,
            ev.from_state.in_([State.ACTIVATED.value, State.CONSENTED.value]),
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query.order_by(ev.id))).all()
        return [datetime.fromisoformat(row.at) for row in rows]

    def _check_resend(self, issued: list[datetime]) -> None:
        if len(issued) >= TAN_ISSUES_MAX:
            raise ApiError(
                409,
                "tan_resend_exhausted",
                f"a transaction number was sent {len(issued)} times for this "
                "identification; the organisation that asked for it can start "
                "a new one",
            )
        wait = (issued[-1] + TAN_RESEND_INTERVAL - self.now()).total_seconds()
        if wait > 0:
            minutes = math.ceil(wait / 60)
            raise ApiError(
                429,
                "tan_sent_recently",
                "a transaction number was sent less than "
                f"{TAN_RESEND_INTERVAL.seconds // 60} minutes ago; a new one can be "
                f"sent in {minutes} minute{'s' if minutes != 1 else ''}",
                retry_after=int(wait) + 1,
            )

    async def transition(
        self,
        case_id: str,
        to: State,
        actor: str,
        detail: str = "",
        expect: set[State] | None = None,
        **values: Any,
    ) -> Case:
        """Move a case to `to`, refusing transitions the life cycle does not allow."""
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    sa.select(db.cases.c.state).where(db.cases.c.id == case_id)
                )
            ).first()
            if row is None:
                raise ApiError(404, "case_not_found", f"no case with id {case_id!r}")
            current = State(row.state)
            if expect is not None and current not in expect:
                raise _illegal(case_id, current, to)
            if to != current and to not in TRANSITIONS[current]:
                raise _illegal(case_id, current, to)
            now = db.utcnow_iso(self.now())
            result = await conn.execute(
                db.cases.update()
                .where(db.cases.c.id == case_id, db.cases.c.state == current.value)
                .values(state=to.value, updated_at=now, **values)
            )
            if result.rowcount != 1:
                raise ApiError(409, "conflict", f"case {case_id} changed meanwhile")
            await self._log(
                conn, case_id, actor, "state", current.value, to.value, detail
            )
        logger.info("case %s - %s -> %s", case_id, current.value, to.value)
        return await self.get(case_id)

    async def log(
        self, case_id: str, actor: str, action: str, detail: str = ""
    ) -> None:
        """Append an agent or system action to the case log (no personal data)."""
        async with self.engine.begin() as conn:
            await self._log(conn, case_id, actor, action, None, None, detail)

    async def _log(
        self,
        conn: AsyncConnection,
        case_id: str,
        actor: str,
        action: str,
        from_state: str | None,
        to_state: str | None,
        detail: str = "",
    ) -> None:
        await conn.execute(
            db.case_events.insert().values(
                case_id=case_id,
                at=db.utcnow_iso(self.now()),
                actor=actor,
                action=action,
                from_state=from_state,
                to_state=to_state,
                detail=detail[:500],
            )
        )

    async def events(self, case_id: str) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(db.case_events)
                .where(db.case_events.c.case_id == case_id)
                .order_by(db.case_events.c.id)
            )
            return [dict(r._mapping) for r in rows]

    async def expire_stale(self) -> int:
        """Expire cases whose link or number ran out; returns how many."""
        now = db.utcnow_iso(self.now())
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(db.cases.c.id).where(
                    sa.or_(
                        sa.and_(
                            db.cases.c.state.in_(["created", "activated"]),
                            db.cases.c.activation_expires < now,
                        ),
                        sa.and_(
                            db.cases.c.state.in_(["consented"]),
                            db.cases.c.tan_expires < now,
                        ),
                    )
                )
            )
            ids = [r.id for r in rows]
        for case_id in ids:
            try:
                await self.transition(case_id, State.EXPIRED, "system", "expired")
            except ApiError:
                pass
        return len(ids)

    async def reset_interrupted(self) -> int:
        """After a restart no call is live: put waiting and in-call cases back."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(db.cases.c.id).where(
                    db.cases.c.state.in_([State.WAITING.value, State.IN_CALL.value])
                )
            )
            ids = [r.id for r in rows]
        for case_id in ids:
            await self.transition(
                case_id, State.CONSENTED, "system", "server restarted"
            )
        return len(ids)


def _illegal(case_id: str, current: State, to: State) -> ApiError:
    return ApiError(
        409,
        "illegal_transition",
        f"case {case_id} is {current.value!r} and cannot become {to.value!r}",
        state=current.value,
    )


def tan_valid_until(case: Case) -> datetime | None:
    if not case.tan_expires:
        return None
    return datetime.fromisoformat(case.tan_expires).astimezone(UTC)
