"""Video pipeline on small generated clips: timing, audio, alpha formats, bad input, bounded memory."""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from modnet_matting.cli.main import main
from modnet_matting.compose import composite, cover
from modnet_matting.inference import Predictor, load_model
from modnet_matting.video import (
    OutputSpec,
    PngSequenceWriter,
    VideoFileWriter,
    VideoMatter,
    VideoReader,
    VideoReadError,
    VideoWriteError,
    ofd_sequence,
    process_video,
    read_rgba,
)
from modnet_matting.video.synthetic import write_synthetic_video
from modnet_matting.video.timing import StreamTiming
from modnet_matting.weights import Preprocess, WeightsConfig, load_weights, save_weights

FRAMES, HEIGHT, WIDTH, FPS = 16, 64, 96, 25


class RedChannel:
    """Stand-in network: alpha = red channel, so every output can be predicted exactly."""

    name = "fake"

    def __init__(self, fail_at: int | None = None) -> None:
        self.shapes: list[tuple[int, ...]] = []
        self.fail_at = fail_at

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.shapes += [tuple(x.shape) for x in batch]
        if self.fail_at is not None and len(self.shapes) >= self.fail_at:
            raise RuntimeError("planted failure")
        return ((batch[:, :1] + 1.0) / 2.0).astype(np.float32)


def fake_predictor(fail_at: int | None = None) -> Predictor:
    return Predictor(RedChannel(fail_at), WeightsConfig(preprocess=Preprocess(reference_size=64)))


class Zero:
    name = "zero"

    def run(self, batch: np.ndarray) -> np.ndarray:
        return np.zeros((batch.shape[0], 1, *batch.shape[2:]), np.float32)


def zero_predictor() -> Predictor:
    """Everything is background."""
    return Predictor(Zero(), WeightsConfig(preprocess=Preprocess(reference_size=64)))


@pytest.fixture(scope="module")
def small_weights(random_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The random weights with a 64 px reference size, so CLI runs take a second, not a minute."""
    model, config = load_weights(random_weights)
    small = dataclasses.replace(config, preprocess=dataclasses.replace(config.preprocess, reference_size=64))
    return save_weights(model, tmp_path_factory.mktemp("small") / "small.safetensors", small, dtype=torch.float32)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "clip.mp4"
    write_synthetic_video(path, frames=FRAMES, height=HEIGHT, width=WIDTH, fps=FPS, audio=True)
    return path


def frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [round(float(f.time), 4) for f in container.decode(video=0)]


def audio_seconds(path: Path) -> tuple[str, float]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return stream.codec_context.name, samples / stream.codec_context.sample_rate


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_alpha_and_composite_keep_frames_timestamps_and_audio(clip: Path, tmp_path: Path):
    specs = [OutputSpec("alpha", tmp_path / "a.mp4"), OutputSpec("composite", tmp_path / "c.mp4")]
    result = process_video(clip, specs, fake_predictor(), background="blue", progress=False)
    assert result.frames == FRAMES and result.outputs == [s.path for s in specs]
    source_audio = audio_seconds(clip)
    for spec in specs:
        assert frame_times(spec.path) == frame_times(clip)
        codec, seconds = audio_seconds(spec.path)
        assert codec == "aac" and seconds == pytest.approx(source_audio[1], abs=0.07)
    assert leftovers(tmp_path) == []


def test_alpha_video_holds_the_matte(clip: Path, tmp_path: Path):
    process_video(clip, [OutputSpec("alpha", tmp_path / "a.mp4")], fake_predictor(), ofd=False, progress=False)
    with VideoReader(clip) as source, VideoReader(tmp_path / "a.mp4") as matte:
        for frame, alpha in zip(source, matte):
            expected = frame.rgb[..., 0].astype(np.float32)  # the fake network's matte is the red channel
            assert np.abs(alpha.rgb[..., 0] - expected).mean() < 4.0


@pytest.mark.parametrize("name", ["cut.mov", "cut.webm", "cut_png"])
def test_cutouts_decode_back_with_their_alpha(clip: Path, tmp_path: Path, name: str):
    out = tmp_path / name
    result = process_video(clip, [OutputSpec("cutout", out)], fake_predictor(), progress=False)
    with VideoReader(clip) as reader:
        inputs = [f.rgb for f in reader]
    expected = list(ofd_sequence(f[..., 0].astype(np.float32) / 255 for f in inputs))
    if out.suffix:
        decoded = [f.rgba for f in read_rgba(out)]
    else:
        decoded = [np.asarray(Image.open(p)) for p in sorted(out.glob("frame_*.png"))]
        assert (out / "timestamps.csv").read_text().splitlines()[2].endswith("0.040000")
        assert any("no audio" in p for p in result.problems)
    assert len(decoded) == FRAMES
    tolerance = {".mov": 2.0, ".webm": 6.0, "": 0.6}[out.suffix]
    for rgba, alpha in zip(decoded, expected):
        assert rgba.shape == (HEIGHT, WIDTH, 4)
        assert np.abs(rgba[..., 3].astype(np.float32) - alpha * 255).mean() < tolerance


def test_writer_alpha_round_trip_is_exact_enough(tmp_path: Path):
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    alpha = (xx * 255 // (WIDTH - 1)).astype(np.uint8)
    rgba = np.dstack([np.full((HEIGHT, WIDTH), 200, np.uint8), (yy * 3).astype(np.uint8),
                      np.zeros((HEIGHT, WIDTH), np.uint8), alpha])
    timing = StreamTiming(Fraction(1, FPS), Fraction(FPS))
    for name, limit in (("x.mov", 1), ("x.webm", 3)):
        with VideoFileWriter(tmp_path / name, "rgba", timing) as writer:
            for index in range(3):
                writer.write(rgba, index)
        frames = list(read_rgba(tmp_path / name))
        assert len(frames) == 3
        assert np.abs(frames[1].rgba[..., 3].astype(int) - alpha).max() <= limit, name


def test_trimming_keeps_window_and_restarts_clock(clip: Path, tmp_path: Path):
    out = tmp_path / "t.mp4"
    result = process_video(clip, [OutputSpec("alpha", out)], fake_predictor(), start=0.2, end=0.44, progress=False)
    assert result.frames == 6  # frames at 0.20 ... 0.40 s
    assert frame_times(out) == [0.0, 0.04, 0.08, 0.12, 0.16, 0.2]
    assert audio_seconds(out)[1] == pytest.approx(0.24, abs=0.07)
    with pytest.raises(VideoReadError, match="no frames"):
        process_video(clip, [OutputSpec("alpha", tmp_path / "none.mp4")], fake_predictor(), start=9, progress=False)
    assert not (tmp_path / "none.mp4").exists() and leftovers(tmp_path) == []


def test_rotation_metadata_kept_and_network_sees_upright_frames(tmp_path: Path):
    src = write_synthetic_video(tmp_path / "rot.mp4", frames=4, height=HEIGHT, width=WIDTH, rotation=90)
    predictor = fake_predictor()
    process_video(src, [OutputSpec("composite", tmp_path / "c.mp4")], predictor, progress=False)
    assert predictor.backend.shapes[0] == (3, 96, 64)  # upright: the stored 96x64 turned on its side
    with av.open(str(tmp_path / "c.mp4")) as container:
        frame = next(container.decode(video=0))
        assert (frame.width, frame.height, frame.rotation) == (WIDTH, HEIGHT, 90)


def test_odd_sizes_are_handled(tmp_path: Path):
    src = write_synthetic_video(tmp_path / "odd.mp4", frames=3, height=63, width=95, audio=False)
    specs = [OutputSpec("composite", tmp_path / "c.mp4"), OutputSpec("cutout", tmp_path / "c.mov")]
    result = process_video(src, specs, fake_predictor(), progress=False)
    assert any("padded" in p for p in result.problems)
    assert frame_times(tmp_path / "c.mp4") == [0.0, 0.04, 0.08]
    assert next(iter(read_rgba(tmp_path / "c.mov"))).rgba.shape == (63, 95, 4)


def test_failure_midway_leaves_no_output(clip: Path, tmp_path: Path):
    specs = [OutputSpec("alpha", tmp_path / "a.mp4"), OutputSpec("cutout", tmp_path / "seq")]
    with pytest.raises(RuntimeError, match="planted"):
        process_video(clip, specs, fake_predictor(fail_at=6), progress=False, batch_size=1)
    assert list(tmp_path.iterdir()) == []


def test_truncated_and_broken_inputs(clip: Path, tmp_path: Path):
    data = clip.read_bytes()
    (tmp_path / "trunc.mp4").write_bytes(data[: len(data) // 2])  # mp4 index is at the end: unreadable
    with pytest.raises(VideoReadError, match="cannot read video"):
        VideoReader(tmp_path / "trunc.mp4")
    (tmp_path / "noise.mp4").write_bytes(os.urandom(3000))
    with pytest.raises(VideoReadError):
        VideoReader(tmp_path / "noise.mp4")
    with pytest.raises(FileNotFoundError):
        VideoReader(tmp_path / "missing.mp4")
    mkv = write_synthetic_video(tmp_path / "whole.mkv", frames=20, height=HEIGHT, width=WIDTH, audio=False)
    whole = Path(mkv).read_bytes()
    (tmp_path / "cut.mkv").write_bytes(whole[: len(whole) // 2])  # streamable container: the head still plays
    result = process_video(tmp_path / "cut.mkv", [OutputSpec("alpha", tmp_path / "part.mp4")], fake_predictor(),
                           progress=False)
    assert 0 < result.frames < 20
    assert any("truncated" in p for p in result.problems)
    assert len(frame_times(tmp_path / "part.mp4")) == result.frames


def test_audio_only_file_has_no_video_stream(tmp_path: Path):
    path = tmp_path / "tone.m4a"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    with pytest.raises(VideoReadError, match="no video stream"):
        VideoReader(path)


def test_writer_refuses_what_it_cannot_do(tmp_path: Path):
    timing = StreamTiming(Fraction(1, FPS), Fraction(FPS))
    with pytest.raises(VideoWriteError, match="transparency"):
        VideoFileWriter(tmp_path / "x.mp4", "rgba", timing)
    with pytest.raises(VideoWriteError, match="cannot store alpha"):
        VideoFileWriter(tmp_path / "x.mkv", "rgba", timing, codec="libx264")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(VideoWriteError, match="other files"):
        PngSequenceWriter(tmp_path / "busy")
    with pytest.raises(VideoWriteError, match="no frames"):
        VideoFileWriter(tmp_path / "empty.mp4", "rgb", timing).close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]


def _rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc to read RSS")
def test_memory_stays_flat_on_a_long_video(tmp_path: Path):
    """400 frames of 320x240 (92 MB of RGB if kept) must not grow memory by more than a few queues."""
    short = write_synthetic_video(tmp_path / "short.mp4", frames=20, height=240, width=320)
    long = write_synthetic_video(tmp_path / "long.mp4", frames=400, height=240, width=320)
    predictor = fake_predictor()

    def peak_rss(src: str) -> float:
        peak, done = [0.0], threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _rss_mib())
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            process_video(src, [OutputSpec("composite", tmp_path / "out.mp4")], predictor, progress=False)
        finally:
            done.set()
            sampler.join()
        return peak[0]

    peak_rss(short)  # warm-up: allocator pools, codec libraries
    baseline = peak_rss(short)
    assert peak_rss(long) - baseline < 50.0


def test_cli_video_with_small_weights(clip: Path, tmp_path: Path, small_weights: Path, capsys):
    out = tmp_path / "out"
    code = main(["video", str(clip), "--output", "all", "-o", str(out), "--weights", str(small_weights),
                 "--device", "cpu", "--end", "0.2", "-q", "--cutout-format", "png"])
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["clip_alpha.mp4", "clip_composite.mp4", "clip_cutout"]
    assert len(list((out / "clip_cutout").glob("frame_*.png"))) == 5
    assert "no audio" in capsys.readouterr().err


def test_cli_video_x264_preset_default_and_choice(clip: Path, tmp_path: Path, small_weights: Path):
    """x264 writes its settings into the stream: superfast by default (subme=1), ultrafast on request."""
    common = [str(clip), "--weights", str(small_weights), "--device", "cpu", "--end", "0.1", "-q"]
    assert main(["video", *common, "-o", str(tmp_path / "default.mp4")]) == 0
    assert main(["video", *common, "-o", str(tmp_path / "quick.mp4"), "--preset", "ultrafast"]) == 0
    assert b"subme=1 " in (tmp_path / "default.mp4").read_bytes()
    assert b"subme=0 " in (tmp_path / "quick.mp4").read_bytes()
    with pytest.raises(SystemExit) as stop:  # argparse's usage error, exit status 2
        main(["video", *common, "-o", str(tmp_path / "x.mp4"), "--preset", "warp"])
    assert stop.value.code == 2 and not (tmp_path / "x.mp4").exists()


def test_cli_video_user_errors_are_one_line(clip: Path, tmp_path: Path, small_weights: Path, capsys):
    weights = ["--weights", str(small_weights), "--device", "cpu", "-q"]
    (tmp_path / "bad.mp4").write_bytes(b"not a video at all")
    cases = [
        ["video", str(tmp_path / "bad.mp4"), "-o", str(tmp_path / "o.mp4"), *weights],
        ["video", str(clip), "-o", str(clip), *weights],
        ["video", str(clip), "-o", str(tmp_path / "noext"), *weights],
        ["video", str(clip), "-o", str(tmp_path / "o.mp4"), "--background", "nosuchcolour", *weights],
        ["video", str(clip), "-o", str(tmp_path / "o.avi"), *weights],
        ["video", str(tmp_path / "missing.mp4"), *weights],
        # options that cannot all be honoured were silently dropped
        ["video", str(clip), "--output", "cutout", "--cutout-format", "webm", "-o", str(tmp_path / "c.mov"), *weights],
        ["video", str(clip), "--output", "cutout", "--cutout-format", "webm", "-o", str(tmp_path / "frames"), *weights],
        ["video", str(clip), "--output", "cutout", "--codec", "libx264", "-o", str(tmp_path / "c.mov"), *weights],
        ["video", str(clip), "--weights", str(tmp_path / "m.xml"), "--backend", "torch", "-q"],
    ]
    (tmp_path / "m.xml").write_text("<net/>")
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("modnet: error: ") and "\n" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4", "m.xml"]


def test_webcam_headless_from_file(clip: Path, tmp_path: Path, small_weights: Path):
    out = tmp_path / "live.mp4"
    code = main(["webcam", "--source", str(clip), "--headless", "--max-frames", "4", "-o", str(out), "--mirror",
                 "--weights", str(small_weights), "--device", "cpu"])
    assert code == 0
    assert frame_times(out) == [0.0, 0.04, 0.08, 0.12]


def test_webcam_without_display_says_so(clip: Path, small_weights: Path, capsys, monkeypatch):
    from modnet_matting.video import live

    monkeypatch.setenv("DISPLAY", "")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(live, "OpenCVDisplay", _NoGui)
    monkeypatch.setattr(sys, "platform", "linux")
    code = main(["webcam", "--source", str(clip), "--weights", str(small_weights), "--device", "cpu"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "--headless" in err and "\n" not in err


class _NoGui:
    def __init__(self) -> None:
        from modnet_matting.video.live import DisplayUnavailable

        raise DisplayUnavailable("this OpenCV build has no GUI")


def test_video_predictor_uses_short_side_rule(random_weights: Path):
    predictor = load_model(random_weights, device="cpu")
    small = dataclasses.replace(predictor.preprocess, reference_size=64)
    predictor = dataclasses.replace(predictor, config=dataclasses.replace(predictor.config, preprocess=small))
    matter = VideoMatter(predictor, ofd=False)
    frame = np.zeros((48, 96, 3), np.uint8)  # short side below, long side above the reference size
    assert predictor.prepare(frame).shape == (3, 32, 96)  # image rule: size kept (floored to 32)
    assert matter.predictor.prepare(frame).shape == (3, 64, 128)  # video rule: short side scaled to 64
    out = matter.process_frame(frame)
    assert out is not None and out.alpha.shape == (48, 96)


def test_fast_composite_matches_the_one_with_given_colours():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    background = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    alpha = rng.random((40, 60), dtype=np.float32)
    alpha[:5] = 0.0
    alpha[-5:] = 1.0
    expected = composite(rgb, alpha, background, foreground=rgb.astype(np.float32) / 255)
    out = composite(rgb, alpha, background, decontaminate=False)
    assert np.abs(out.astype(int) - expected).max() <= 1
    np.testing.assert_array_equal(out[:5], background[:5])
    np.testing.assert_array_equal(out[-5:], rgb[-5:])


def test_composite_over_a_looping_background_video(clip: Path, tmp_path: Path):
    short = write_synthetic_video(tmp_path / "bg.mkv", frames=3, height=32, width=48, audio=False)
    out = tmp_path / "c.mp4"
    result = process_video(clip, [OutputSpec("composite", out)], zero_predictor(), background=short, ofd=False,
                           progress=False)
    assert result.frames == FRAMES  # the 3-frame background looped
    with VideoReader(short) as bg_reader:
        bg_first = cover(next(iter(bg_reader)).rgb, HEIGHT, WIDTH)
    with VideoReader(out) as reader:
        frames = [f.rgb for f in reader]
    assert np.abs(frames[0].astype(int) - bg_first).mean() < 6  # alpha 0: the picture is the background
    assert np.abs(frames[3].astype(int) - bg_first).mean() < 6  # frame 3 is background frame 0 again


def test_variable_frame_rate_timestamps_are_kept(tmp_path: Path):
    times_ms = [0, 40, 120, 130, 300, 340]
    src = tmp_path / "vfr.mkv"
    with av.open(str(src), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for index, ms in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(np.full((HEIGHT, WIDTH, 3), index * 40, np.uint8), format="rgb24")
            frame.pts, frame.time_base = ms, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    assert frame_times(src) == [ms / 1000 for ms in times_ms]
    for name in ("a.mp4", "a.webm", "a.mov"):
        kind = "cutout" if name.endswith((".webm", ".mov")) else "alpha"
        process_video(src, [OutputSpec(kind, tmp_path / name)], fake_predictor(), progress=False)
        assert frame_times(tmp_path / name) == [ms / 1000 for ms in times_ms], name


def _clip_starting_late(path: Path, offset_s: float = 1.4667, frames: int = 100, gap: range | None = None) -> Path:
    """A clip whose timestamps start at ``offset_s`` (as MPEG-TS recordings do), audio alongside;
    the frames in ``gap`` are left out (a damaged recording)."""
    rate = 16000
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.codec_context.options = {"preset": "ultrafast"}
        audio = container.add_stream("aac", rate=rate, layout="mono")
        first = round(offset_s * FPS)
        for index in range(frames):
            if gap is not None and index in gap:
                continue
            frame = av.VideoFrame.from_ndarray(np.full((HEIGHT, WIDTH, 3), index % 200, np.uint8), format="rgb24")
            frame.pts, frame.time_base = first + index, Fraction(1, FPS)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        for start in range(0, frames * rate // FPS, 1024):
            tone = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            tone.sample_rate, tone.pts = rate, round(first / FPS * rate) + start
            for packet in audio.encode(tone):
                container.mux(packet)
        for packet in audio.encode(None):
            container.mux(packet)
    return path


def _audio_packets(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for packet in container.demux(audio=0) if packet.size)


@pytest.mark.parametrize("suffix", [".ts", ".mkv", ".mp4"])
def test_trimming_counts_from_the_start_of_the_file(tmp_path: Path, suffix: str):
    """A .ts starting at 1.4667 s: --start 2 found no frames, --start 1 --end 2 gave 16 frames, not 25."""
    src = _clip_starting_late(tmp_path / f"late{suffix}")
    whole, part, tail = tmp_path / "whole.mp4", tmp_path / "part.mp4", tmp_path / "tail.mp4"
    assert process_video(src, [OutputSpec("alpha", whole)], fake_predictor(), progress=False).frames == 100
    times = frame_times(whole)  # re-timed from the start of the video: no 1.47 s lead
    assert times[0] == 0.0 and times[-1] == pytest.approx(3.96, abs=0.001)
    assert _audio_packets(whole) == _audio_packets(src)  # the first audio packet too
    assert process_video(src, [OutputSpec("alpha", part)], fake_predictor(), start=1, end=2,
                         progress=False).frames == 25
    expected_tail = sum(t >= 2 - 1e-6 for t in times)  # --start counts from the file's start, like a player
    assert process_video(src, [OutputSpec("alpha", tail)], fake_predictor(), start=2,
                         progress=False).frames == expected_tail
    assert frame_times(part)[0] == 0.0 and frame_times(tail)[0] == 0.0


def test_frames_lost_inside_a_recording_are_reported(tmp_path: Path):
    """A .ts that lost 5 of 120 frames was processed without a word."""
    src = _clip_starting_late(tmp_path / "damaged.ts", frames=120, gap=range(60, 65))
    result = process_video(src, [OutputSpec("alpha", tmp_path / "a.mp4")], fake_predictor(), progress=False)
    assert result.frames == 115
    first_missing = 60 / FPS
    assert any(f"5 frame(s) are missing from the stream (the first at {first_missing:.2f} s)" in problem
               for problem in result.problems), result.problems
    clean = _clip_starting_late(tmp_path / "clean.ts", frames=30)
    result = process_video(clean, [OutputSpec("alpha", tmp_path / "b.mp4")], fake_predictor(), progress=False)
    assert result.problems == []


def test_video_and_webcam_replace_only_their_own_outputs(clip: Path, tmp_path: Path, small_weights: Path, capsys):
    """`--output all` picks <stem>_composite.mp4 itself: a user's file of that name was silently replaced."""
    out = tmp_path / "out"
    out.mkdir()
    users = out / "clip_composite.mp4"
    users.write_bytes(b"the user's own video")
    common = [str(clip), "--weights", str(small_weights), "--device", "cpu", "--end", "0.2", "-q"]
    assert main(["video", *common, "--output", "all", "-o", str(out), "--cutout-format", "png"]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err and users.read_bytes() == b"the user's own video"
    assert sorted(p.name for p in out.iterdir()) == ["clip_composite.mp4"]  # nothing half-done either
    assert main(["video", *common, "--output", "all", "-o", str(out), "--cutout-format", "png", "--overwrite"]) == 0
    assert users.read_bytes() != b"the user's own video"
    assert main(["video", *common, "--output", "all", "-o", str(out), "--cutout-format", "png"]) == 0  # ours: again
    mine = tmp_path / "mine.mp4"
    mine.write_bytes(b"not a video of modnet's")
    assert main(["webcam", "--source", str(clip), "--headless", "-o", str(mine), "--max-frames", "3",
                 "--weights", str(small_weights), "-q"]) == 2
    assert mine.read_bytes() == b"not a video of modnet's"
