"""The media gateway of one call: phone media to the agent, agent media to the phone.

Both peer connections terminate in the server (DTLS-SRTP on each leg). Media is
relayed encoded: each leg's receivers hand their reassembled frames to a hub per
kind and direction, and `RelayTrack`s send them on the other leg, so the agent
sees the phone's own picture and the server spends no encoder. Keyframe
requests from a leg are sent on to the other; NACKs are answered per leg by
aiortc from its own packet history. Hubs outlive peer connections, so either
side may (re)connect in any order without renegotiating the other leg.

The phone's video and audio are recorded encoded (`Recorder`); only the frame
tap decodes, and only while frames are wanted (`FrameTap`).
"""

from __future__ import annotations

import functools
import logging
from typing import BinaryIO

from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from media.admission import Admission, GatewayFullError, admission
from media.frametap import FrameTap
from media.passthrough import (
    EncodedHub,
    RelayTrack,
    enlarge_receive_buffers,
    find_receiver,
    forward_keyframe_requests,
    hook_receiver,
    prefer_codec,
)
from media.recorder import Recorder

__all__ = ["FrameTap", "GatewayFullError", "MediaGateway"]

logger = logging.getLogger(__name__)

KINDS = ("audio", "video")


class _Leg:
    """One side of the call: what it receives and the tracks it is sent."""

    def __init__(self, name: str, label: str) -> None:
        self.name = name
        self.hubs = {kind: EncodedHub(kind, f"{label} {name}") for kind in KINDS}
        self.pc: RTCPeerConnection | None = None


class MediaGateway:
    """Relays and records one call; knows nothing of cases or agents.

    Raises `GatewayFullError` when the process already carries its limit of calls.
    """

    def __init__(
        self,
        label: str,
        recording_sink: BinaryIO | None = None,
        admission: Admission = admission,
    ) -> None:
        admission.admit(label)
        self.label = label
        self._admission = admission
        self._phone = _Leg("phone", label)
        self._agent = _Leg("agent", label)
        self.to_agent: dict[str, RelayTrack] = {}
        self.to_phone: dict[str, RelayTrack] = {}
        self.tap = FrameTap()
        self._recorder = Recorder(recording_sink, label) if recording_sink else None
        self._tapped = False
        self._agent_recorded = False
        self._stopped = False

    @property
    def recorder(self) -> Recorder | None:
        return self._recorder

    @property
    def phone_hubs(self) -> dict[str, EncodedHub]:
        return self._phone.hubs

    def attach_phone(self, pc: RTCPeerConnection) -> None:
        """Call before applying the phone's offer: routes its tracks and adds ours."""
        if not self._tapped:
            self._tapped = True
            self.tap.attach(self._phone.hubs["video"])
            if self._recorder is not None:
                self._phone.hubs["video"].subscribe(self._recorder.on_video)
                self._phone.hubs["audio"].subscribe(self._recorder.on_audio)
        self.to_phone = self._attach(pc, self._phone, self._agent)

    def attach_agent(self, pc: RTCPeerConnection) -> None:
        """Call before applying the agent's offer."""
        if self._recorder is not None and not self._agent_recorded:
            self._agent_recorded = True
            self._agent.hubs["audio"].subscribe(self._recorder.on_agent_audio)
        self.to_agent = self._attach(pc, self._agent, self._phone)

    def _attach(
        self, pc: RTCPeerConnection, leg: _Leg, other: _Leg
    ) -> dict[str, RelayTrack]:
        leg.pc = pc
        tracks = {}
        for kind in KINDS:
            track = RelayTrack(
                other.hubs[kind], functools.partial(_sending_codec, pc, kind)
            )
            sender = pc.addTrack(track)
            forward_keyframe_requests(sender, other.hubs[kind])
            tracks[kind] = track
            # both legs must carry the same codec: follow the other leg's
            codec = _sending_codec(other.pc, kind) or other.hubs[kind].codec
            if codec is not None:
                prefer_codec(pc, kind, codec)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._on_track(pc, leg, track)

        @pc.on("icegatheringstatechange")
        def on_gathered() -> None:
            if pc.iceGatheringState == "complete":
                enlarge_receive_buffers(pc)

        return tracks

    def _on_track(
        self, pc: RTCPeerConnection, leg: _Leg, track: MediaStreamTrack
    ) -> None:
        logger.info("%s - %s track %s", self.label, leg.name, track.kind)
        hub = leg.hubs[track.kind]
        receiver = find_receiver(pc, track)

        def ended() -> None:
            if hub._receiver is receiver:
                hub.set_receiver(None)

        hook_receiver(receiver, hub, ended)
        hub.set_receiver(receiver)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._admission.release(self.label)
        for track in (*self.to_agent.values(), *self.to_phone.values()):
            track.stop()
        self.tap.detach()
        if self._recorder is not None:
            await self._recorder.stop()


def _sending_codec(
    pc: RTCPeerConnection | None, kind: str
) -> RTCRtpCodecParameters | None:
    """The codec negotiated for `kind` on `pc` (the first of the answer), if any."""
    if pc is None:
        return None
    for transceiver in pc.getTransceivers():
        # TODO(aiortc 1.16 internals): RTCRtpTransceiver._codecs holds the
        # negotiated codecs; aiortc has no getParameters() yet.
        if transceiver.kind == kind and transceiver._codecs:
            return transceiver._codecs[0]
    return None
