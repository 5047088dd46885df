"""Launch the faceres demo: `python app.py [--host HOST] [--port PORT]`.

Serves on 127.0.0.1:7860 unless told otherwise (flags, or GRADIO_SERVER_NAME / GRADIO_SERVER_PORT).
Requests queue (at most `--concurrency` run at once) instead of failing under load; uploads over
50 MB are refused; the state of at most `--sessions` browser sessions is kept; no analytics.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

SESSIONS = 256
"""Browser sessions whose Gradio state is kept (least recently used dropped first). Gradio copies
every component's config for each session, about 0.25 MB for this app, and by default keeps
10,000 sessions: a public demo would grow with every visitor (the hour-long soak found it)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options, defaults taken from Gradio's environment variables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--host",
        default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        help="interface to listen on (default: $GRADIO_SERVER_NAME or 127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        help="port (default: $GRADIO_SERVER_PORT or 7860)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=int(os.environ.get("FACERES_APP_CONCURRENCY", "2")),
        help="requests run at once; more wait in the queue (default: 2)",
    )
    parser.add_argument(
        "--sessions",
        type=int,
        default=int(os.environ.get("FACERES_APP_SESSIONS", SESSIONS)),
        help=f"browser sessions whose state is kept, about 0.25 MB each (default: {SESSIONS})",
    )
    parser.add_argument(
        "--queue-size",
        type=int,
        default=256,
        help="requests that may wait before new ones are refused (default: 256)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from faceres.app import build_demo, map_large_buffers, trim_memory, warm_up
    from faceres.imageio import MAX_FILE_BYTES

    map_large_buffers()
    demo = build_demo()
    demo.queue(default_concurrency_limit=args.concurrency, max_size=args.queue_size)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        max_file_size=MAX_FILE_BYTES,
        state_session_capacity=args.sessions,
        prevent_thread_lock=True,
    )
    warm_up()  # once the server answers: the first request need not wait for the start-up too
    trim_memory()
    demo.block_thread()


if __name__ == "__main__":
    main()
