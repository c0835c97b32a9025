"""Video and live matting: streaming file pipeline, OFD flicker fix, webcam.

- ``process_video`` — file in, matte / composite / cut-out files out (PyAV,
  bounded memory, audio and timing kept).
- ``VideoMatter`` — push frames, get mattes back one frame later (OFD).
- ``OFDFilter`` / ``ofd_correct`` / ``ofd_sequence`` — the one-frame-delay fix alone.
"""

from .matter import VideoMatter, video_predictor
from .ofd import DEFAULT_THRESHOLD, OFDFilter, OFDOutput, ofd_correct, ofd_sequence
from .pipeline import OutputSpec, VideoResult, load_background, process_video
from .reader import Frame, VideoInfo, VideoReader, VideoReadError, read_rgba
from .writer import PngSequenceWriter, VideoFileWriter, VideoWriteError

__all__ = [
    "DEFAULT_THRESHOLD",
    "Frame",
    "OFDFilter",
    "OFDOutput",
    "OutputSpec",
    "PngSequenceWriter",
    "VideoFileWriter",
    "VideoInfo",
    "VideoMatter",
    "VideoReadError",
    "VideoReader",
    "VideoResult",
    "VideoWriteError",
    "load_background",
    "ofd_correct",
    "ofd_sequence",
    "process_video",
    "read_rgba",
    "video_predictor",
]
