"""`kdlandmarks web`: serve the in-browser app (built into the package) on this machine, or rewrite a model's
runtime description (the JSON beside its ONNX file that the web app and tests/test_web.py read)."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("web", help="serve the in-browser app (webcam or photos; try its Sample photo button)",
                              description="Serve the in-browser app (RetinaFace + the lite student on onnxruntime-web, "
                                          "wasm SIMD and threads; webcam or photos, or its Sample photo button) at "
                                          "http://HOST:PORT/, cross-origin isolated (COOP/COEP) so that the wasm "
                                          "runtime may use threads. A wheel ships the page; in a source checkout "
                                          "build it first: cd web && npm ci && npm run build.")
    p.add_argument("--dir", default=None,
                   help="a page built elsewhere (OUT=DIR npm run build; default: the one in this install)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port)")
    p.add_argument("--verbose", action="store_true", help="log each request")
    p.add_argument("--write-spec", metavar="MODEL", default=None,
                   help="instead of serving: (re)write the runtime description <model>.json beside a shipped "
                        "model's or an .onnx file's ONNX file, and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.write_spec is not None:
        from kdlandmarks.export.modelspec import write_model_spec
        from kdlandmarks.models.zoo import resolve_model

        path = write_model_spec(resolve_model(args.write_spec, backend="onnx"))
        print(f"wrote {path}")
        return 0
    from kdlandmarks.apps.web import make_server

    server = make_server(args.dir, args.host, args.port, verbose=args.verbose)
    host, port = server.server_address[:2]
    print(f"serving {server.root} at http://{host}:{port}/ (Ctrl-C to stop)", flush=True)  # type: ignore[attr-defined]
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
