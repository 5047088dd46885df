"""The faceres demo: one `gr.Blocks` with the Verify, Expression, Find, ResNet vs plain and Models
tabs.

One module per tab (`verify_tab`, `expression_tab`, `find_tab`, `compare_tab`, `models_tab`), each
with its handlers (plain functions, callable from tests and, through their `api_name`, from
`gradio_client`) and a `build()` that lays the tab out. `uploads` holds what a request may read
(its page's own uploads only), `held` the photos held in memory for the page that uploaded them;
`render` the HTML and pictures sent back (inline, never written).

>>> from faceres.app import build_demo
>>> build_demo().queue(default_concurrency_limit=2).launch()   # what `python app.py` does
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import threading
import time
from collections.abc import Callable

import gradio as gr

from faceres import registry
from faceres.app import compare_tab, expression_tab, find_tab, models_tab, verify_tab
from faceres.app.uploads import UploadsOnly
from faceres.errors import FaceresError
from faceres.registry.runtime import load_runner

log = logging.getLogger(__name__)

DELETE_CACHE = (60, 300)
"""Every 60 s, Gradio deletes its temporary files older than 300 s (uploads never submitted)."""
TABS = {
    "Verify": verify_tab,
    "Expression": expression_tab,
    "Find": find_tab,
    "ResNet vs plain": compare_tab,
    "Models": models_tab,
}
"""Tab title → module with `build()`; a new tab is one module and one entry here."""


def build_demo() -> gr.Blocks:
    """The whole demo as one `gr.Blocks` (not launched, no queue set).

    >>> demo = build_demo()
    >>> demo.queue(default_concurrency_limit=2).launch(server_name="127.0.0.1")
    """
    with UploadsOnly(title="faceres", analytics_enabled=False, delete_cache=DELETE_CACHE) as demo:
        gr.Markdown(
            "# faceres\nResidual networks for faces: verification, expressions, and why "
            "skip connections matter. Photos are never written to disk: they are held in "
            "memory for your page only, and dropped when it closes or after 15 idle minutes."
        )
        with gr.Tabs():
            for title, tab in TABS.items():
                with gr.Tab(title):
                    tab.build()
        demo.unload(demo.drop_photos)  # the page closed: its photos go
    return demo


def ready_first() -> list[tuple[str, str | None]]:
    """(task, model) made ready at start: the default identity and expression models, and the
    default expression model's plain twin (the ResNet vs plain tab's first pair); any other
    model is prepared on its first use, with a notice."""
    pairs: list[tuple[str, str | None]] = [("identity", None), ("expression", None)]
    try:
        twin = registry.get_entry(registry.default_model("expression")).get("twin")
    except FaceresError:
        twin = None
    return pairs + ([("expression", twin)] if twin else [])


def warm_up() -> threading.Thread:
    """Make the default identity and expression models ready (on a fresh machine: their ONNX
    export, seconds) in a background thread started now, while the server starts; a request
    that comes first waits for the same work instead of repeating it.

    >>> warm_up().join()
    """

    def work() -> None:
        for task, name in ready_first():
            try:
                load_runner(task, name)
            except FaceresError as exc:  # the request that needs it will say so
                log.warning("could not prepare %s: %s", name or f"the {task} model", exc)

    thread = threading.Thread(target=work, name="faceres-warm-up", daemon=True)
    thread.start()
    return thread


TRIM_EVERY_S = 60
"""How often the serving process hands freed heap memory back to the system."""


def release_freed_memory() -> bool:
    """Give freed heap pages back to the system (glibc's `malloc_trim`); False where the C
    library has no such call. A server whose worker threads come and go leaves its heap
    fragmented, and its resident memory climbs although little is in use (the hour-long soak
    found about 3 MiB a minute)."""
    trim = _glibc("malloc_trim")
    if trim is None:
        return False
    trim(0)
    return True


LARGE_BUFFER_BYTES = 1 << 20
"""Buffers this large (photos, their decoded pixels) get memory of their own from the system."""
_M_MMAP_THRESHOLD = -3
"""glibc's `mallopt` parameter number for the mmap threshold (malloc.h)."""


def map_large_buffers(threshold: int = LARGE_BUFFER_BYTES) -> bool:
    """Serve every allocation of `threshold` bytes or more with its own mapping, handed back
    to the system when freed (glibc's `mallopt(M_MMAP_THRESHOLD)`); False where the C library
    has no such call. By default glibc raises that threshold to the largest buffer freed so far
    (up to 32 MB), after which each uploaded photo lands in a worker thread's heap and stays
    resident once freed: 14 sessions' 11 MB photos grew the server by 59-98 MB instead of the
    36 MB they held."""
    mallopt = _glibc("mallopt")
    return mallopt is not None and bool(mallopt(_M_MMAP_THRESHOLD, threshold))


@functools.cache
def _glibc(name: str) -> Callable[..., int] | None:
    """The C library's function `name`; None where the library has none (not glibc)."""
    path = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(path), name, None) if path else None


def trim_memory(every_s: float = TRIM_EVERY_S) -> threading.Thread:
    """`release_freed_memory` every `every_s` seconds, in a daemon thread started now."""

    def work() -> None:
        while release_freed_memory():
            time.sleep(every_s)

    thread = threading.Thread(target=work, name="faceres-memory-trim", daemon=True)
    thread.start()
    return thread
