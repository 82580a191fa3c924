"""Copy a streamed Matroska recording into a seekable file, without re-encoding.

A recording is written as a live stream (the sink cannot seek), so its header has
no duration and no cue index. Remuxing once on export gives players both.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

import av


def remux(source: BinaryIO | io.RawIOBase, output: Path) -> dict[str, float | int]:
    """Stream-copy every packet; returns the duration in seconds and packet counts."""
    packets = {"video": 0, "audio": 0}
    last = 0.0
    with av.open(source, mode="r", format="matroska") as src:
        with av.open(str(output), mode="w", format="matroska") as dst:
            mapping = {}
            for stream in src.streams:
                if stream.type in ("video", "audio"):
                    mapping[stream.index] = dst.add_stream_from_template(stream)
            for packet in src.demux(*[src.streams[i] for i in mapping]):
                if packet.dts is None:
                    continue  # the demuxer's end-of-stream marker
                kind = packet.stream.type
                if packet.pts is not None and packet.time_base is not None:
                    last = max(last, float(packet.pts * packet.time_base))
                packet.stream = mapping[packet.stream.index]
                dst.mux(packet)
                packets[kind] += 1
    return {"seconds": round(last, 3), **packets}
