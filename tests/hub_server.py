"""Test helpers for the registry's Hub path: a local Hugging Face Hub (olah in offline mode,
serving git repos from a folder) and tiny timm models saved into throw-away registries.

    with olah_hub(tmp_path) as hub:
        revision = hub.publish(folder, "faceres-test/tiny")
        env = hub.env(hf_home)   # HF_ENDPOINT at olah, an empty HF_HOME, for a subprocess
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import timm
import torch

from faceres import registry

TINY_LABELS = ["neutral", "happy", "sad"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def git(*args: str, cwd: Path) -> str:
    """Run git with a fixed identity and no user or system config; its stdout."""
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    cmd = [
        "git",
        "-c",
        "user.name=faceres tests",
        "-c",
        "user.email=tests@faceres.invalid",
        "-c",
        "init.defaultBranch=main",
        *args,
    ]
    return subprocess.run(
        cmd, cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


@dataclass
class LocalHub:
    """A running olah: `endpoint` for HF_ENDPOINT, `mirrors` holding `models/<org>/<repo>`."""

    endpoint: str
    mirrors: Path

    def publish(self, folder: Path, repo_id: str, *, tamper: str | None = None) -> str:
        """Commit `folder`'s files as model repo `repo_id` (one byte of `tamper` flipped, to
        play a corrupted upload); returns the commit id."""
        repo = self.mirrors / "models" / repo_id
        repo.mkdir(parents=True)
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                target = repo / path.relative_to(folder)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(path.read_bytes())
        if tamper:
            data = bytearray((repo / tamper).read_bytes())
            data[-1] ^= 0xFF
            (repo / tamper).write_bytes(bytes(data))
        git("init", "-q", cwd=repo)
        git("add", "-A", cwd=repo)
        git("commit", "-q", "-m", f"upload {repo_id}", cwd=repo)
        return git("rev-parse", "HEAD", cwd=repo)

    def env(self, hf_home: Path, **extra: str) -> dict[str, str]:
        """Environment for a subprocess using this Hub and the cache under `hf_home`."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("HF_", "HUGGINGFACE_")) and k != "TRANSFORMERS_OFFLINE"
        }
        env.update(
            HF_ENDPOINT=self.endpoint,
            HF_HOME=str(hf_home),
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DISABLE_PROGRESS_BARS="1",
            **extra,
        )
        return env


@contextmanager
def olah_hub(workdir: Path, startup_timeout: float = 60.0) -> Iterator[LocalHub]:
    """Start olah on 127.0.0.1 (free port, offline mode, mirrors under `workdir`); stop it after.

    olah serves only the git repos found under its `mirrors-path`, as
    `<mirrors-path>/models/<org>/<repo>`, and with `offline = true` never calls huggingface.co.
    """
    port = free_port()
    mirrors = workdir / "mirrors"
    (mirrors / "models").mkdir(parents=True)
    config = workdir / "olah.toml"
    config.write_text(
        "[basic]\n"
        f'host = "127.0.0.1"\nport = {port}\n'
        f'repos-path = "{workdir / "cache"}"\n'
        f'mirrors-path = ["{mirrors}"]\n'
        "metadata-cache-ttl = 0\n"
        "[accessibility]\noffline = true\n",
        encoding="utf-8",
    )
    log = (workdir / "olah.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "olah.server",
            "-c",
            str(config),
            "--log-path",
            str(workdir / "logs"),
        ],
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"olah exited: {(workdir / 'olah.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(endpoint + "/api/models/faceres-test/ping", timeout=1)
                break
            except urllib.error.HTTPError:  # any HTTP answer (here a 404) means it is up
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("olah did not start in time") from None
                time.sleep(0.2)
        yield LocalHub(endpoint=endpoint, mirrors=mirrors)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def tiny_model(seed: int = 0) -> torch.nn.Module:
    """timm's `test_resnet` (~0.4 M parameters) with three classes and random weights."""
    torch.manual_seed(seed)
    return timm.create_model("test_resnet", num_classes=len(TINY_LABELS)).eval()


def save_tiny(
    name: str, *, default: bool = False, seed: int = 0, files: dict | None = None, **kwargs
) -> tuple[torch.nn.Module, Path]:
    """A tiny model saved with `registry.save_model` into the registry in use."""
    model = tiny_model(seed)
    files = {"train/curves.json": '{"loss": [1.0, 0.5]}', **(files or {})}
    folder = registry.save_model(
        model,
        name,
        task="expression",
        config={
            "label_names": TINY_LABELS,
            "faceres": {"labels": TINY_LABELS, "datasets": ["tiny-faces"]},
        },
        card=f"# {name}\n\nA tiny test model.\n",
        metrics={"tiny-faces/accuracy": 0.5},
        default=default,
        source="tests",
        files=files,
        **kwargs,
    )
    return model, folder


FAULTS = ("500", "cut", "hang")
"""How `faulty_proxy` breaks a file download: answer 500, send half the file then close the
connection, or send the headers and then nothing."""


@contextmanager
def faulty_proxy(upstream: str, fault: str) -> Iterator[str]:
    """An HTTP proxy on 127.0.0.1 in front of the Hub at `upstream` that passes every request
    through except file downloads (GET .../resolve/...), which it breaks as `fault` says
    (`FAULTS`). Yields the proxy's endpoint."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _forward(self, method: str) -> None:
            request = urllib.request.Request(upstream + self.path, method=method)
            for key in ("Range", "Accept-Encoding", "Authorization"):
                if self.headers.get(key):
                    request.add_header(key, self.headers[key])
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    status, headers, body = answer.status, answer.headers, answer.read()
            except urllib.error.HTTPError as exc:
                status, headers, body = exc.code, exc.headers, exc.read()
            broken = method == "GET" and "/resolve/" in self.path
            if broken and fault == "500":
                self.send_error(500, "Internal Server Error")
                return
            self.send_response(status)
            for key, value in headers.items():
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            length = headers.get("Content-Length") if method == "HEAD" else len(body)
            self.send_header("Content-Length", str(length or 0))
            self.end_headers()
            if broken and fault == "hang":
                time.sleep(3600)
            self.wfile.write(body[: len(body) // 2] if broken and fault == "cut" else body)

        def do_GET(self) -> None:
            self._forward("GET")

        def do_HEAD(self) -> None:
            self._forward("HEAD")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
