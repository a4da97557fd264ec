"""Serve the built web app (web/ in the repository: ``npm ci && npm run build`` writes web/dist) locally.

The page runs onnxruntime-web's single-threaded wasm build, so it needs no cross-origin isolation
(COOP/COEP) headers; it only needs the right MIME types (application/wasm for the runtime, JavaScript
modules) and a secure origin for the webcam and the service worker, which 127.0.0.1 and localhost are.
Standard library only.
"""
from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path
from typing import Any

from kdlandmarks.errors import ConfigError

REPO_WEB_DIST = Path(__file__).resolve().parents[3] / "web" / "dist"  # an editable install's checkout
MIME_TYPES = {".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript",
              ".json": "application/json", ".onnx": "application/octet-stream", ".css": "text/css"}


def find_web_dir(directory: str | Path | None = None) -> Path:
    """The built page: `directory`, else ./web/dist, ./dist or the checkout's web/dist, whichever holds
    index.html and app.js; ConfigError (saying how to build it) when none does."""
    candidates = [Path(directory)] if directory is not None else [Path("web/dist"), Path("dist"), REPO_WEB_DIST]
    for cand in candidates:
        if (cand / "index.html").is_file() and (cand / "app.js").is_file():
            return cand.resolve()
    where = ", ".join(str(c) for c in candidates)
    raise ConfigError(f"no built web app in {where}: build it first with `cd web && npm ci && npm run build`")


class WebHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with the MIME types the page needs; revalidated on each load (so a rebuilt page and
    its service worker are picked up), and quiet unless `verbose`."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME_TYPES}
    verbose = False

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        if self.verbose:
            super().log_message(format, *args)


def make_server(directory: str | Path | None = None, host: str = "127.0.0.1", port: int = 8000,
                verbose: bool = False) -> http.server.ThreadingHTTPServer:
    """An HTTP server for the built page (port 0: any free port; `server.server_address` says which)."""
    root = find_web_dir(directory)
    handler = functools.partial(type("Handler", (WebHandler,), {"verbose": verbose}), directory=str(root))
    try:
        server = http.server.ThreadingHTTPServer((host, int(port)), handler)
    except OSError as exc:
        raise ConfigError(f"cannot serve on {host}:{port} ({exc.strerror or exc})") from None
    server.daemon_threads = True
    server.root = root  # type: ignore[attr-defined]
    return server


def serve_in_thread(directory: str | Path | None = None, host: str = "127.0.0.1",
                    port: int = 0) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Start a server on a background thread; returns it (call .shutdown()) and its base URL."""
    server = make_server(directory, host, port)
    threading.Thread(target=server.serve_forever, name="kdlandmarks-web", daemon=True).start()
    h, p = server.server_address[:2]
    return server, f"http://{h}:{p}/"
