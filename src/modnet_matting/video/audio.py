"""The source's audio in a matted video: copied packet by packet, or re-encoded where the container needs it."""

from __future__ import annotations

import av

from .reader import open_input
from .timing import StreamTiming

#: Audio codecs to re-encode to when a container cannot hold the input's.
AUDIO_FALLBACK = {"webm": "libopus", "mp4": "aac", "mov": "aac", "matroska": "aac"}


class AudioPassthrough:
    """Copies the source's audio track into an output, in step with the video.

    Packets are remuxed untouched when the container accepts the codec and
    re-encoded (Opus for WebM, AAC otherwise) when it does not. The source is
    opened a second time so audio can be interleaved by time as video frames
    are written, with nothing buffered beyond one packet.
    """

    def __init__(self, source: str, output: av.container.OutputContainer, timing: StreamTiming) -> None:
        self.problems: list[str] = []
        self.timing = timing
        self._input = open_input(source)
        self._in = self._input.streams.audio[0]
        self._pending: av.Packet | None = None
        self._done = False
        self._packets = self._input.demux(self._in)
        supported = getattr(output, "supported_codecs", None)
        name = self._in.codec_context.name
        self.transcode = supported is not None and name not in supported
        if self.transcode:
            codec = AUDIO_FALLBACK.get(output.format.name.split(",")[0], "aac")
            rate = 48000 if codec == "libopus" else self._in.codec_context.sample_rate
            self._out = output.add_stream(codec, rate=rate, layout=self._in.codec_context.layout.name)
        else:
            self._out = output.add_stream_from_template(self._in)

    def _next_packet(self) -> av.Packet | None:
        if self._pending is not None:
            packet, self._pending = self._pending, None
            return packet
        while not self._done:
            try:
                packet = next(self._packets)
            except StopIteration:
                self._done = True
                return None
            except av.error.FFmpegError as exc:
                self.problems.append(f"audio stopped early ({getattr(exc, 'strerror', None) or exc})")
                self._done = True
                return None
            if packet.size and packet.pts is not None:
                return packet
        return None

    def write_until(self, output: av.container.OutputContainer, seconds: float | None) -> None:
        """Mux audio up to ``seconds`` of output time (everything left with ``None``)."""
        while True:
            packet = self._next_packet()
            if packet is None:
                if self.transcode and seconds is None:
                    self._mux(output, self._out.encode(None))
                return
            start = float(packet.pts * packet.time_base)
            if self.timing.end is not None and start >= self.timing.end:
                self._done = True
                continue
            out_time = start - self.timing.offset
            if seconds is not None and out_time > seconds:
                self._pending = packet
                return
            length = float(packet.duration * packet.time_base) if packet.duration else 0.0
            if out_time + length > -1e-3:  # reaches output time 0: an AAC priming packet ends right there
                self._write(output, packet)

    def _write(self, output: av.container.OutputContainer, packet: av.Packet) -> None:
        if self.transcode:
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                return
            for frame in frames:
                frame.pts = None
                self._mux(output, self._out.encode(frame))
            return
        shift = round(self.timing.offset / packet.time_base)
        packet.pts -= shift
        if packet.dts is not None:
            packet.dts -= shift
        packet.stream = self._out
        output.mux(packet)

    @staticmethod
    def _mux(output: av.container.OutputContainer, packets: list[av.Packet]) -> None:
        for packet in packets:
            output.mux(packet)

    def close(self) -> None:
        self._input.close()
