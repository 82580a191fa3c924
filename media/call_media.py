"""The media of one call behind one interface, wherever it runs.

`CallMedia` is what signaling talks to: it applies each side's offer, closes a
side's connection, stops the call and offers the decoded-frame tap. `LocalCallMedia`
runs the gateway and both peer connections in this process; `media.workers`
gives the same interface for a call carried by a worker process.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import BinaryIO, Protocol

import av
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.exceptions import (
    InternalError,
    InvalidAccessError,
    InvalidStateError,
    OperationError,
)

from media.admission import Admission, admission
from media.gateway import MediaGateway

logger = logging.getLogger(__name__)

LEGS = ("phone", "agent")

# called with the side ("phone" or "agent") and its new connection state
StateCallback = Callable[[str, str], Awaitable[None]]


class OfferError(ValueError):
    """A side's SDP offer could not be applied; the message says why."""


class FrameSource(Protocol):
    """The decoded-frame tap as the frame tools see it (see `media.frametap`)."""

    @property
    def frame(self) -> av.VideoFrame | None: ...

    @property
    def received_at(self) -> float: ...

    @property
    def count(self) -> int: ...

    def want(self, seconds: float = ...) -> None: ...

    async def next_frame(self, timeout: float) -> av.VideoFrame: ...


class CallMedia(Protocol):
    @property
    def tap(self) -> FrameSource: ...

    async def answer(self, leg: str, sdp: str) -> str: ...

    async def close_leg(self, leg: str) -> None: ...

    def has_leg(self, leg: str) -> bool: ...

    async def stop(self) -> None: ...


def rtc_configuration(stun_urls: Sequence[str]) -> RTCConfiguration:
    return RTCConfiguration(iceServers=[RTCIceServer(urls=url) for url in stun_urls])


class LocalCallMedia:
    """A call's gateway and its two peer connections, in this process."""

    def __init__(
        self,
        label: str,
        stun_urls: Sequence[str] = (),
        recording_sink: BinaryIO | None = None,
        on_state: StateCallback | None = None,
        admission: Admission = admission,
    ) -> None:
        self.gateway = MediaGateway(label, recording_sink, admission)
        self.label = label
        self.tap = self.gateway.tap
        self._stun_urls = tuple(stun_urls)
        self._on_state = on_state
        self._pcs: dict[str, RTCPeerConnection] = {}

    def has_leg(self, leg: str) -> bool:
        return leg in self._pcs

    async def answer(self, leg: str, sdp: str) -> str:
        """Apply `leg`'s offer on a new connection (replacing its old one)."""
        if leg not in LEGS:
            raise OfferError(f"unknown side {leg!r}")
        if "a=fingerprint:" not in sdp:
            # aiortc would answer and then fail the handshake out of sight
            raise OfferError(
                "the offer could not be applied: it has no DTLS fingerprint "
                "(a=fingerprint), so the media cannot be encrypted"
            )
        await self.close_leg(leg)
        pc = RTCPeerConnection(rtc_configuration(self._stun_urls))
        if leg == "phone":
            self.gateway.attach_phone(pc)
        else:
            self.gateway.attach_agent(pc)
        self._watch(pc, leg)
        self._pcs[leg] = pc
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except (
            ValueError,
            AttributeError,
            IndexError,
            KeyError,
            TypeError,
            InternalError,
            InvalidAccessError,
            InvalidStateError,
            OperationError,
        ) as exc:
            logger.warning(
                "%s x %s offer refused: %s",
                self.label,
                leg,
                exc,
                exc_info=logger.isEnabledFor(logging.DEBUG),
            )
            await self.close_leg(leg)
            raise OfferError(f"the offer could not be applied: {exc}") from exc
        return str(pc.localDescription.sdp)

    async def close_leg(self, leg: str) -> None:
        pc = self._pcs.pop(leg, None)
        if pc is not None:
            await pc.close()

    async def stop(self) -> None:
        for leg in LEGS:
            await self.close_leg(leg)
        await self.gateway.stop()

    def _watch(self, pc: RTCPeerConnection, leg: str) -> None:
        @pc.on("connectionstatechange")
        async def on_state() -> None:
            logger.info("%s - %s leg %s", self.label, leg, pc.connectionState)
            # a replaced connection's late events are not the side's state
            if self._on_state is not None and self._pcs.get(leg) is pc:
                await self._on_state(leg, pc.connectionState)
