"""Read short video files frame by frame, within limits, and write annotated frames as WebM.

>>> info = video_info("clip.mp4")
>>> info.seconds, info.width
(4.0, 640)
>>> [(i, round(t, 1)) for i, t, rgb in read_frames("clip.mp4", max_fps=2)][:3]
[(0, 0.0), (15, 0.5), (30, 1.0)]
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from faceres.errors import ImageError
from faceres.imageio import MAX_FILE_BYTES

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's own messages: ours say it once

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi")
"""File name endings read as videos (by the CLI; the app's video input takes any upload)."""
MAX_VIDEO_BYTES = MAX_FILE_BYTES
"""Largest video file accepted (50 MB, the app's upload limit)."""
MAX_VIDEO_SECONDS = 60.0
MAX_VIDEO_FRAMES = 1800
"""Longest video accepted: 60 s, and at most 1800 frames (60 s at 30 frames per second)."""
MAX_VIDEO_PIXELS = 1920 * 1080
"""Largest frame accepted (width × height): full HD."""
WEBM_FOURCC = "VP80"
"""VP8 in WebM: what this OpenCV can write that browsers play (its FFmpeg has no H.264 encoder)."""


class VideoError(ImageError):
    """A video we cannot read: corrupt, too long, too large, or not a video."""


@dataclass(frozen=True)
class VideoInfo:
    """What a video file says about itself: frames per second, frame count, frame size."""

    fps: float
    frames: int
    width: int
    height: int

    @property
    def seconds(self) -> float:
        """Duration in seconds."""
        return self.frames / self.fps


def is_video(path: str | Path) -> bool:
    """Whether `path` names a video by its ending (`VIDEO_EXTENSIONS`).

    >>> is_video("clip.MP4"), is_video("photo.jpg")
    (True, False)
    """
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _open(path: str | Path) -> tuple[cv2.VideoCapture, VideoInfo]:
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"Video file not found: {path.name}")
    size = path.stat().st_size
    if size == 0:
        raise VideoError(f"Video file is empty: {path.name}")
    if size > MAX_VIDEO_BYTES:
        raise VideoError(
            f"Video file is too large ({size / 2**20:.0f} MB > {MAX_VIDEO_BYTES // 2**20} MB): "
            f"{path.name}"
        )
    level = cv2.utils.logging.getLogLevel()  # OpenCV warns on stderr when it cannot open it
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if not capture.isOpened():
        raise VideoError(
            f"{path.name} cannot be read as a video: it is corrupt, or in a format OpenCV's "
            "FFmpeg does not decode."
        )
    fps = capture.get(cv2.CAP_PROP_FPS)
    info = VideoInfo(
        fps=fps if np.isfinite(fps) and 0 < fps <= 240 else 30.0,
        frames=max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))),
        width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
        height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
    )
    try:
        check_limits(info, path.name)
    except VideoError:
        capture.release()
        raise
    return capture, info


def check_limits(info: VideoInfo, name: str) -> None:
    """VideoError, in words, when `info` exceeds a limit (length, frame count, frame size)."""
    if info.frames > MAX_VIDEO_FRAMES or info.seconds > MAX_VIDEO_SECONDS:
        raise VideoError(
            f"{name} is too long ({info.seconds:.0f} s, {info.frames} frames); the limit is "
            f"{MAX_VIDEO_SECONDS:.0f} s and {MAX_VIDEO_FRAMES} frames: cut it shorter."
        )
    if info.width * info.height > MAX_VIDEO_PIXELS:
        raise VideoError(
            f"{name}: frames of {info.width}×{info.height} are too large; the limit is "
            "1920×1080: export it smaller."
        )


def video_info(path: str | Path) -> VideoInfo:
    """The header of a video file, checked against the limits (VideoError otherwise)."""
    capture, info = _open(path)
    capture.release()
    return info


def frame_step(fps: float, max_fps: float | None) -> int:
    """Every how many frames `read_frames` keeps one, for at most `max_fps` per second.

    >>> frame_step(30, 10), frame_step(25, 10), frame_step(30, None)
    (3, 2, 1)
    """
    return max(1, round(fps / max_fps)) if max_fps else 1


def read_frames(
    path: str | Path, max_fps: float | None = None
) -> Iterator[tuple[int, float, np.ndarray]]:
    """(frame number, time in seconds, RGB uint8 frame) of a video file, at most `max_fps` frames
    per second of video (every frame when None); VideoError when it is corrupt, has no frame, or
    turns out longer than the limits while being read."""
    capture, info = _open(path)
    step = frame_step(info.fps, max_fps)
    name = Path(path).name
    index = 0
    try:
        while capture.grab():
            if index >= MAX_VIDEO_FRAMES or index / info.fps >= MAX_VIDEO_SECONDS:  # header lied
                check_limits(VideoInfo(info.fps, index + 1, info.width, info.height), name)
            if index % step == 0:
                ok, bgr = capture.retrieve()
                if not ok or bgr is None or bgr.ndim != 3:
                    raise VideoError(f"{name}: frame {index} cannot be decoded; it is corrupt.")
                if bgr.shape[0] * bgr.shape[1] > MAX_VIDEO_PIXELS:
                    check_limits(VideoInfo(info.fps, 1, bgr.shape[1], bgr.shape[0]), name)
                yield index, index / info.fps, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        capture.release()
    if index == 0:
        raise VideoError(f"{name} has no frame that can be decoded; it is corrupt or not a video.")


class WebmWriter:
    """Frames (RGB uint8, one size) encoded as a WebM video in memory: the file FFmpeg needs is
    written in a private temporary folder and deleted by `finish` (or on leaving the `with`).

    >>> with WebmWriter(fps=10) as writer:
    ...     writer.write(rgb)
    ...     data = writer.finish()
    >>> data[:4]
    b'\\x1aE\\xdf\\xa3'
    """

    def __init__(self, fps: float):
        self.fps = fps
        self._folder = Path(tempfile.mkdtemp(prefix="faceres-video-"))
        self._path = self._folder / "annotated.webm"
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None

    def write(self, rgb: np.ndarray) -> None:
        """Append one frame (every frame has the first one's size)."""
        size = (rgb.shape[1] // 2 * 2, rgb.shape[0] // 2 * 2)  # VP8 wants even sides
        if self._writer is None:
            self._size = size
            self._writer = cv2.VideoWriter(
                str(self._path),
                cv2.CAP_FFMPEG,
                cv2.VideoWriter_fourcc(*WEBM_FOURCC),
                self.fps,
                size,
            )
            if not self._writer.isOpened():
                raise VideoError("This server cannot encode WebM video (OpenCV without VP8).")
        if size != self._size:
            raise VideoError("Every frame of a video must have the same size.")
        self._writer.write(cv2.cvtColor(rgb[: size[1], : size[0]], cv2.COLOR_RGB2BGR))

    def finish(self) -> bytes:
        """The encoded video; the temporary file is gone afterwards."""
        try:
            if self._writer is None:
                raise VideoError("No frame to encode.")
            self._writer.release()
            return self._path.read_bytes()
        finally:
            self.close()

    def close(self) -> None:
        """Delete the temporary folder and everything in it."""
        if self._writer is not None:
            self._writer.release()
        shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> WebmWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
