"""Encoded relay on real aiortc peers: no re-encoding, keyframes, bounded queues."""

from __future__ import annotations

import asyncio
import time

import av
import pytest

from media.passthrough import (
    MAX_VIDEO_BACKLOG,
    EncodedHub,
    RelayTrack,
    h264_nal_types,
    is_keyframe,
    vp8_picture_size,
)
from tests.test_gateway import (
    HEIGHT,
    WIDTH,
    Call,
    encoded_clip,
    pattern,
    pattern_index,
    psnr,
    vp8_frames,
    wait_for,
    with_call,
)


@pytest.fixture(autouse=True)
def _loopback() -> None:
    from media.bench import loopback_only

    loopback_only()


def decode_all(frames, codec_name: str) -> list[av.VideoFrame]:
    decoder = av.CodecContext.create(codec_name, "r")
    pictures = []
    for frame in frames:
        pictures += decoder.decode(av.Packet(frame.data))
    return pictures


async def check_relay_is_bit_exact(codec: str, decoder: str) -> None:
    async def body(call: Call) -> None:
        phone_frames = []
        call.gateway.phone_hubs["video"].subscribe(phone_frames.append)
        await call.join_phone()
        await call.join_agent()
        await wait_for(lambda: len(call.agent.frames) >= 20, 10, "20 frames")

        received = call.agent.frames[:20]
        assert received[0].codec.mimeType.lower() == codec.lower()
        assert received[0].keyframe
        sent = {frame.data for frame in phone_frames}
        # every frame the agent got is byte for byte what the phone sent
        assert all(frame.data in sent for frame in received)

        picture = decode_all(received, decoder)[-1].to_ndarray(format="bgr24")
        assert picture.shape == (HEIGHT, WIDTH, 3)
        # the agent sees exactly the picture the phone encoded: no generation loss
        last = [frame.data for frame in phone_frames].index(received[-1].data)
        at_phone = decode_all(phone_frames[: last + 1], decoder)[-1]
        assert psnr(picture, at_phone.to_ndarray(format="bgr24")) == float("inf")
        # and that is the camera's picture, up to the phone encoder's own loss
        assert psnr(picture, pattern(pattern_index(picture))) > 25

    await with_call(body, codec=codec)


async def test_relay_track_vp8_reaches_agent_unchanged() -> None:
    await check_relay_is_bit_exact("video/VP8", "vp8")


async def test_relay_track_h264_reaches_agent_unchanged() -> None:
    await check_relay_is_bit_exact("video/H264", "h264")


async def test_relay_track_late_agent_gets_keyframe_at_once() -> None:
    async def body(call: Call) -> None:
        await call.join_phone()
        hub = call.gateway.phone_hubs["video"]
        # the phone's encoder sends one keyframe at the start, then only deltas
        await wait_for(lambda: hub.frames >= 45, 10, "1.5 s of phone video")
        requests = hub.keyframe_requests
        await call.join_agent()
        await wait_for(lambda: call.agent.frames, 1.5, "a frame at the late agent")
        first = call.agent.frames[0]
        assert first.keyframe
        assert first.arrival - call.agent.joined_at < 1.0
        assert hub.keyframe_requests > requests

    await with_call(body)


async def test_relay_track_backlog_bounded_with_slow_consumer() -> None:
    frames = vp8_frames(encoded_clip(40))
    hub = EncodedHub("video")
    track = RelayTrack(hub)
    for _ in range(25):  # 1000 frames, nobody reading
        for frame in frames:
            hub.publish(frame)
        assert len(track._queue) <= MAX_VIDEO_BACKLOG
    assert track.dropped > 900
    # after falling behind, sending restarts at a keyframe
    for frame in frames[:5]:
        hub.publish(frame)
    packet = await asyncio.wait_for(track.recv(), 1)
    assert is_keyframe(frames[0].codec, bytes(packet))
    track.stop()


async def test_relay_track_timestamps_monotonic_across_sources() -> None:
    frames = vp8_frames(encoded_clip(3))
    hub = EncodedHub("video")
    track = RelayTrack(hub)
    for frame in frames:
        hub.publish(frame)
    # the phone reconnects: a new receiver whose clock starts at 0 again
    again = vp8_frames(encoded_clip(3))
    for frame in again:
        frame.arrival = time.monotonic() + 1.0
        hub.publish(frame)
    stamps = [(await track.recv()).pts for _ in range(6)]
    assert stamps == sorted(stamps) and len(set(stamps)) == 6
    assert stamps[3] - stamps[2] >= 90000 * 0.9  # the 1 s gap is kept
    track.stop()


def test_is_keyframe_vp8_and_h264() -> None:
    clip = vp8_frames(encoded_clip(2))
    assert clip[0].keyframe and not clip[1].keyframe
    assert vp8_picture_size(clip[0].data) == (WIDTH, HEIGHT)
    stream = b"\x00\x00\x00\x01\x67xx\x00\x00\x01\x68y\x00\x00\x01\x65z"
    assert h264_nal_types(stream) == [7, 8, 5]
    h264 = clip[0].codec.__class__(
        mimeType="video/H264", clockRate=90000, payloadType=102
    )
    assert not is_keyframe(h264, b"\x00\x00\x00\x01\x41abc")
    assert is_keyframe(h264, b"\x00\x00\x00\x01\x67x\x00\x00\x01\x68y\x00\x00\x01\x65z")
