"""`nomoat serve`: the chat demo, the browser runtime and the models on localhost.

    /                 the chat demo (examples/chat/)
    /nomoat.js        classic script (window.llm); /nomoat.mjs the ES module; the worker,
    /pyodide/ /ort/ /wheels/   the runtime files (web/dist, built by `make web`)
    /models/NAME/     model packages from the models folder (nomoat.home.models_home())

Every response carries the COOP/COEP headers that make the page cross-origin isolated, which
multi-threaded wasm needs. Only files under those folders are served (see inside()), and only to
requests addressed to localhost (or to the address it was told to listen on), so that a web page
whose name is rebound to 127.0.0.1 cannot read them.
"""

from __future__ import annotations

import ipaddress
import mimetypes
import os
import sys
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .errors import ModelNotFoundError
from .home import models_home, repo_root, web_dist

TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
         ".json": "application/json", ".onnx": "application/octet-stream", ".whl": "application/octet-stream",
         ".zip": "application/zip", ".html": "text/html; charset=utf-8", ".css": "text/css"}


LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def inside(root: Path, rel: str) -> Path | None:
    """The file (or folder with an index.html) `rel` names under `root`, or None if it lies outside.
    ".." is collapsed first; a symlink directly in `root` (a model package linked into the models
    folder) may point anywhere, but nothing below it may lead out of the folder it points to."""
    if "\0" in rel:
        return None
    target = Path(os.path.normpath(root / rel))
    if not target.is_relative_to(root) or target == root:
        return None
    top = root / target.relative_to(root).parts[0]
    real, base = target.resolve(), top.resolve() if top.is_symlink() else root.resolve()
    if not real.is_relative_to(base):
        return None
    if real.is_file() or (real / "index.html").is_file():
        return real
    return None


class Handler(SimpleHTTPRequestHandler):
    roots: list[tuple[str, Path]] = []  # (url prefix, folder), first match wins

    def end_headers(self) -> None:
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def translate_path(self, path: str) -> str:
        url = unquote(urlsplit(path).path)
        for prefix, root in self.roots:
            if url.startswith(prefix):
                target = inside(root, url[len(prefix):] or "index.html")
                if target is not None:
                    return str(target)
        return str(Path("/nonexistent") / url.lstrip("/").replace("\0", ""))

    def parse_request(self) -> bool:
        """Only requests addressed to this machine by a loopback name (or to the host it was told to
        bind): a page on another site whose name is rebound to 127.0.0.1 (DNS rebinding) is refused."""
        if not super().parse_request():
            return False
        host = (self.headers.get("Host") or "").lower()
        name = host[1:host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
        bound = self.server.server_address[0]
        if not (name in LOOPBACK or name == bound or (bound in ("0.0.0.0", "::") and is_ip(name))):
            self.send_error(421, f"nomoat serve answers requests for localhost (or the address it serves on), "
                                 f"not {name!r}")
            return False
        return True
    def guess_type(self, path) -> str:
        return TYPES.get(Path(str(path)).suffix, mimetypes.guess_type(str(path))[0] or "application/octet-stream")

    def log_message(self, fmt: str, *args) -> None:
        if self.server.verbose:  # type: ignore[attr-defined]
            super().log_message(fmt, *args)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client went away mid-file (an aborted download): nothing to report
        super().handle_error(request, client_address)


def make_server(port: int = 8000, host: str = "127.0.0.1", verbose: bool = False,
                models: Path | None = None) -> ThreadingHTTPServer:
    dist = web_dist()
    if not (dist / "nomoat.js").is_file():
        raise ModelNotFoundError(f"The browser runtime is not built ({dist}/nomoat.js is missing); run 'make web'.")
    root = repo_root()
    site = root / "examples" / "chat" if root else dist
    roots = [("/models/", models or models_home()), ("/", site), ("/", dist)]
    handler = type("NomoatHandler", (Handler,), {"roots": roots})
    server = Server((host, port), partial(handler))
    server.verbose = verbose  # type: ignore[attr-defined]
    return server


def serve(port: int = 8000, host: str = "127.0.0.1", verbose: bool = False) -> None:
    server = make_server(port, host, verbose)
    url = f"http://{host}:{server.server_address[1]}/"
    print(f"nomoat: serving the chat demo at {url}  (Ctrl-C stops)", file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
