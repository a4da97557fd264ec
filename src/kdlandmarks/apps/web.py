"""Serve the in-browser app locally.

The page is built into the package (web/ in the repository: ``npm ci && npm run build`` writes
kdlandmarks/apps/webpage/, which a wheel ships); its models are served from the package's weights
(models/<file> -> kdlandmarks/weights/<file>), so an install holds them once.

Every response carries the cross-origin-isolation headers (COOP same-origin, COEP require-corp) that
onnxruntime-web's threads need (SharedArrayBuffer), the MIME types the page needs (application/wasm,
JavaScript modules), and no-cache (a rebuilt page and its service worker are picked up). The webcam and
the service worker need a secure origin, which 127.0.0.1 and localhost are. Standard library only.
"""
from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path
from typing import Any

from kdlandmarks.errors import ConfigError
from kdlandmarks.models.zoo import WEIGHTS_DIR

PAGE_DIR = Path(__file__).resolve().parent / "webpage"  # what `npm run build` writes, and a wheel ships
MIME_TYPES = {".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript",
              ".json": "application/json", ".onnx": "application/octet-stream", ".css": "text/css"}
ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
                     "Cross-Origin-Resource-Policy": "same-origin"}
MODEL_SUFFIXES = (".onnx", ".json")  # what models/ serves from the package's weights


def find_web_dir(directory: str | Path | None = None) -> Path:
    """The built page: `directory`, else the one in this install; ConfigError (saying how to build it) when
    it holds no index.html and app.js."""
    root = Path(directory) if directory is not None else PAGE_DIR
    if (root / "index.html").is_file() and (root / "app.js").is_file():
        return root.resolve()
    raise ConfigError(f"no built web app in {root}: build it from the repository with `cd web && npm ci && "
                      "npm run build` (it writes the page into the package; a wheel built afterwards ships it)")


class WebHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with the headers the page needs (see the module docstring); models/ falls back to the
    package's weights; quiet unless `verbose`."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME_TYPES}
    verbose = False

    def translate_path(self, path: str) -> str:
        local = super().translate_path(path)  # self.directory joined with the URL's path, without ".."
        relative = Path(local).relative_to(self.directory)
        if (not Path(local).exists() and len(relative.parts) == 2 and relative.parts[0] == "models"
                and relative.suffix in MODEL_SUFFIXES):
            return str(WEIGHTS_DIR / relative.name)
        return local

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-cache")
        for name, value in ISOLATION_HEADERS.items():
            self.send_header(name, value)
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
