"""Recorder: encoded frames into Matroska through an encrypting, non-seekable sink."""

from __future__ import annotations

import fractions
import os
import subprocess
import threading

import av
import numpy as np
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from media import recorder as recorder_module
from media.bench import encode_tone
from media.passthrough import EncodedFrame, is_keyframe
from media.recorder import Recorder
from tests.test_gateway import encoded_clip, ffprobe_packets, vp8_frames

OPUS = RTCRtpCodecParameters(
    mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111
)


class EncryptingSink:
    """Write-only AES-CTR stream, standing in for the server's encrypting writer."""

    def __init__(self, path: str, key: bytes, nonce: bytes) -> None:
        self._file = open(path, "wb")
        self._encryptor = Cipher(algorithms.AES(key), modes.CTR(nonce)).encryptor()
        self.closed = False

    def write(self, data: bytes) -> int:
        self._file.write(self._encryptor.update(bytes(data)))
        return len(data)

    def flush(self) -> None:
        self._file.flush()

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self._file.write(self._encryptor.finalize())
        self._file.close()
        self.closed = True


def decrypt(path: str, key: bytes, nonce: bytes, out: str) -> None:
    decryptor = Cipher(algorithms.AES(key), modes.CTR(nonce)).decryptor()
    with open(path, "rb") as src, open(out, "wb") as dst:
        dst.write(decryptor.update(src.read()) + decryptor.finalize())


def test_recorder_keeps_vfr_low_fps_and_lost_frames_timed(tmp_path) -> None:
    key, nonce = os.urandom(32), os.urandom(16)
    sink = EncryptingSink(str(tmp_path / "call.enc"), key, nonce)
    recorder = Recorder(sink, "test")

    # 8 fps, then 5 fps (variable frame rate); frames 30..34 lost on the way
    clip = vp8_frames(encoded_clip(40))
    times = [i / 8 for i in range(20)] + [2.5 + i / 5 for i in range(20)]
    tone = encode_tone(1.0)
    start = 100.0
    origin = 3_000_000_000  # RTP timestamps start anywhere (RFC 3550 5.1)
    frames = []
    for i, (frame, t) in enumerate(zip(clip, times, strict=True)):
        if 30 <= i < 35:
            continue
        frame.timestamp = origin + int(t * 90000)
        frame.arrival = start + t + 0.05  # network delay, not in the timestamps
        frames.append(("video", t, frame))
    for i in range(int(times[-1] / 0.02)):
        data = tone[i % len(tone)]
        audio = EncodedFrame(OPUS, data, i * 960, True, arrival=start + i * 0.02)
        frames.append(("audio", i * 0.02, audio))
    for kind, _, frame in sorted(frames, key=lambda item: (item[1], item[0])):
        (recorder.on_video if kind == "video" else recorder.on_audio)(frame)
    recorder.close()
    assert sink.closed and recorder.error is None

    plain = str(tmp_path / "call.mkv")
    decrypt(str(tmp_path / "call.enc"), key, nonce, plain)
    packets = ffprobe_packets(plain)
    video = [round(float(p["pts_time"]), 3) for p in packets if p["stream_index"] == 0]
    expected = [
        round(t - times[0] + 0.05, 3) for i, t in enumerate(times) if not 30 <= i < 35
    ]
    # audio started 50 ms before video, so video starts at 0.05 s
    assert video == expected
    audio = [float(p["pts_time"]) for p in packets if p["stream_index"] == 1]
    assert audio[0] == 0.0 and abs(audio[-1] - times[-1]) < 0.05
    decode = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", plain, "-f", "null", "-"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert decode.returncode == 0


def test_recorder_h264_gets_codec_private(tmp_path) -> None:
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = 320, 240, "yuv420p"
    codec.time_base = fractions.Fraction(1, 30)
    codec.options = {"preset": "ultrafast", "tune": "zerolatency"}
    h264 = RTCRtpCodecParameters(
        mimeType="video/H264", clockRate=90000, payloadType=102
    )
    sink_path = tmp_path / "h264.mkv"
    recorder = Recorder(open(sink_path, "wb"), "test")
    for i in range(30):
        image = np.full((240, 320, 3), i * 8, np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(
            format="yuv420p"
        )
        frame.pts = i
        for packet in codec.encode(frame):
            data = bytes(packet)
            recorder.on_video(
                EncodedFrame(h264, data, i * 3000, is_keyframe(h264, data), 10 + i / 30)
            )
    recorder.close()
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height",
         "-of", "csv=p=0", str(sink_path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert probe.stdout.splitlines()[0] == "h264,320,240"
    assert recorder.frames["video"] == 30


def test_recorder_drops_video_when_sink_is_slow(monkeypatch) -> None:
    monkeypatch.setattr(recorder_module, "MAX_PENDING", 20)
    release = threading.Event()

    class StuckSink:
        closed = False

        def write(self, data: bytes) -> int:
            release.wait(10)
            return len(data)

        def flush(self) -> None:
            pass

        def close(self) -> None:
            self.closed = True

    recorder = Recorder(StuckSink(), "test")
    clip = vp8_frames(encoded_clip(10))
    for _ in range(50):
        for frame in clip:
            recorder.on_video(frame)
            assert recorder._queue.qsize() <= 21
    assert recorder.dropped > 400
    release.set()
    recorder.close()
