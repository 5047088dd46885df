"""Photos held in memory for the browser session that uploaded them, so that every action on the
photos on screen (another model, another detector, Find then Group) works without a new upload.

The promise, which the tests check: no photo is on disk after its request (the upload is read
into memory and deleted); a photo is held only for its session (keyed by Gradio's session hash,
which no other session knows) and is dropped when the page closes (`demo.unload`) or after
`idle_s` without use; all sessions together hold at most `max_bytes`, one session at most
`session_bytes`: past that the least recently used photos go first.

>>> store = PhotoStore(max_bytes=10_000_000, session_bytes=5_000_000, idle_s=900)
>>> store.hold("session-a", "/tmp/gradio/x/a.jpg", b"...jpeg...")
True
>>> store.get("session-b", "/tmp/gradio/x/a.jpg") is None   # another session
True
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

IDLE_S = 15 * 60
"""A photo not used for this long is dropped."""
MAX_MB = 512
"""Default cap (MB) on the photos held for all sessions together (`FACERES_PHOTO_MEMORY_MB`)."""
SESSION_SHARE = 4
"""One session may hold at most 1/SESSION_SHARE of the cap, so that one cannot evict everyone."""


@dataclass
class Held:
    """One held photo: its bytes as uploaded and when it was last used."""

    data: bytes
    used: float


class PhotoStore:
    """Uploaded photos' bytes per (session, upload path), least recently used first out."""

    def __init__(
        self,
        max_bytes: int,
        session_bytes: int,
        idle_s: float = IDLE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes, self.session_bytes, self.idle_s = max_bytes, session_bytes, idle_s
        self._clock = clock
        self._photos: OrderedDict[tuple[str, str], Held] = OrderedDict()
        self._lock = threading.Lock()
        self._sweeper: threading.Thread | None = None

    @classmethod
    def from_settings(cls) -> PhotoStore:
        """A store capped by `FACERES_PHOTO_MEMORY_MB` (default `MAX_MB`)."""
        cap = int(float(os.environ.get("FACERES_PHOTO_MEMORY_MB", MAX_MB)) * 1_000_000)
        return cls(max_bytes=cap, session_bytes=cap // SESSION_SHARE)

    @property
    def nbytes(self) -> int:
        """Bytes held for all sessions."""
        with self._lock:
            return sum(len(h.data) for h in self._photos.values())

    def sessions(self) -> set[str]:
        """Sessions holding at least one photo."""
        with self._lock:
            return {session for session, _ in self._photos}

    def keys(self, session: str) -> set[str]:
        """The keys (upload paths) of the photos `session` holds."""
        with self._lock:
            return {key for s, key in self._photos if s == session}

    def hold(self, session: str, key: str, data: bytes) -> bool:
        """Hold `data` for `session` under `key`, evicting the least recently used photos (this
        session's first when it is over its share); False when it is larger than one session may
        hold (it is then used for this request only)."""
        if len(data) > min(self.session_bytes, self.max_bytes):
            return False
        with self._lock:
            self._photos.pop((session, key), None)
            self._photos[(session, key)] = Held(data, self._clock())
            self._evict(session)
        self._start_sweeper()
        return True

    def get(self, session: str, key: str) -> bytes | None:
        """The bytes `session` holds under `key` (marked as used now), None when it holds none."""
        with self._lock:
            held = self._photos.get((session, key))
            if held is None or self._clock() - held.used > self.idle_s:
                self._photos.pop((session, key), None)
                return None
            held.used = self._clock()
            self._photos.move_to_end((session, key))
            return held.data

    def drop(self, session: str) -> None:
        """Forget every photo of `session` (its page closed)."""
        with self._lock:
            for key in [k for k in self._photos if k[0] == session]:
                del self._photos[key]

    def sweep(self) -> None:
        """Drop every photo idle for longer than `idle_s`."""
        with self._lock:
            now = self._clock()
            for key in [k for k, h in self._photos.items() if now - h.used > self.idle_s]:
                del self._photos[key]

    def _evict(self, session: str) -> None:
        mine = sum(len(h.data) for (s, _), h in self._photos.items() if s == session)
        for key in [k for k in self._photos if k[0] == session]:
            if mine <= self.session_bytes:
                break
            mine -= len(self._photos.pop(key).data)
        total = sum(len(h.data) for h in self._photos.values())
        while total > self.max_bytes:
            _, oldest = self._photos.popitem(last=False)
            total -= len(oldest.data)

    def _start_sweeper(self) -> None:
        """A daemon thread that sweeps every minute (at most), so idle photos go even when no
        request comes."""
        if self._sweeper is not None:
            return
        with self._lock:
            if self._sweeper is not None:
                return
            self._sweeper = threading.Thread(target=self._sweep_forever, daemon=True)
            self._sweeper.name = "faceres-photo-sweeper"
            self._sweeper.start()

    def _sweep_forever(self) -> None:
        while True:
            time.sleep(min(60.0, max(self.idle_s / 4, 0.05)))
            self.sweep()
