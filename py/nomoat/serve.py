"""`nomoat serve`: the chat demo, the browser runtime and the models on localhost.

    /                 the chat demo (examples/chat/)
    /rag/             ask a document, offline (examples/rag/: embeddings + the chat model)
    /nomoat.js        classic script (window.llm); /nomoat.mjs the ES module; the worker,
    /pyodide/ /ort/ /wheels/   the runtime files (web/dist, built by `make web`)
    /models/NAME/     model packages from the models folder (nomoat.home.models_home())
    /models/index.json   the packages there, for the demo's picker (model_index(); a real file of
                      that name wins)
    /v1/              with openai=True (`nomoat serve --openai`): OpenAI's API over those packages
                      (openai_server.py: chat completions, embeddings, models)

Every response carries the COOP/COEP headers that make the page cross-origin isolated, which
multi-threaded wasm needs. Only files under those folders are served (see inside()), and only to
requests addressed to localhost (or to the address it was told to listen on), so that a web page
whose name is rebound to 127.0.0.1 cannot read them.
"""

from __future__ import annotations

import io
import ipaddress
import json
import mimetypes
import os
import sys
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from .errors import ModelNotFoundError
from .home import models_home, repo_root, web_dist
from .package import MANIFEST, manifest_problem

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


# --- /models/index.json ---------------------------------------------------------------------------

SMALL = 8 << 20  # the most bytes of a package's JSON file the index reads (the weights are never opened)


def _small_json(root: Path, rel: str) -> dict | None:
    """The JSON object in `rel` under `root` (its links checked as inside() does), or None if it is
    absent, too large, not UTF-8 JSON or not an object."""
    path = inside(root, rel)
    try:
        if path is None or path.stat().st_size > SMALL:
            return None
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def package_entry(models: Path, name: str) -> dict | None:
    """What the demo shows of the package folder `name` in `models`, or None if it is not a valid one:
    {name, url, bytes (its files, from nomoat.json), model_type, context_window (config.json's
    max_position_embeddings), chat (tokenizer_config.json has a chat template), quantization
    (nomoat.json's "quantization", else the file name of the GGUF it was converted from, else null),
    kind ("llm", or "embedding" for a sentence-embedding package)}."""
    manifest = _small_json(models, f"{name}/{MANIFEST}")
    config = _small_json(models, f"{name}/config.json")
    tok = _small_json(models, f"{name}/tokenizer_config.json")
    if manifest is None or manifest_problem(manifest) or config is None or tok is None:
        return None
    window, model_type = config.get("max_position_embeddings"), config.get("model_type")
    if type(window) is not int or window <= 0 or not isinstance(model_type, str):
        return None
    quant, source = manifest.get("quantization"), manifest.get("source")
    if not isinstance(quant, str):
        quant = source.get("gguf") if isinstance(source, dict) else source
    return {"name": name, "url": f"/models/{quote(name)}/", "bytes": sum(f["size"] for f in manifest["files"].values()),
            "model_type": model_type, "context_window": window,
            "chat": isinstance(tok.get("chat_template"), str) and bool(tok["chat_template"]),
            "quantization": quant if isinstance(quant, str) else None,
            "kind": manifest.get("kind", "llm")}  # "embedding" packages are not chat models: the demo leaves them out


def model_index(models: Path) -> dict:
    """/models/index.json: {"models": [package_entry, ...]} for every valid package folder in
    `models`, by name; anything else there (a broken package, a stray file) is left out."""
    try:
        names = sorted(p.name for p in models.iterdir() if not p.name.startswith("."))
    except OSError:
        names = []
    return {"models": [e for e in map(partial(package_entry, models), names) if e is not None]}


class Handler(SimpleHTTPRequestHandler):
    roots: list[tuple[str, Path]] = []  # (url prefix, folder), first match wins
    models: Path | None = None  # the models folder, whose index.json this generates
    api = None  # openai_server.OpenAIApi, which answers /v1/ (openai=True)

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

    def send_head(self):
        """The files; and /models/index.json made from the models folder when it holds no such file."""
        if (self.models is not None and unquote(urlsplit(self.path).path) == "/models/index.json"
                and not Path(self.translate_path(self.path)).is_file()):
            body = json.dumps(model_index(self.models), indent=1).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            return io.BytesIO(body)
        return super().send_head()

    def do_GET(self) -> None:
        if self.api is not None and self.api.owns(self.path):
            return self.api.handle(self)
        return super().do_GET()

    def do_POST(self) -> None:
        if self.api is not None and self.api.owns(self.path):
            return self.api.handle(self)
        self.send_error(501, "Unsupported method ('POST')")

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
    api = None  # the OpenAIApi its handlers use, closed with it

    def server_close(self) -> None:
        super().server_close()
        if self.api is not None:
            self.api.close()

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client went away mid-file (an aborted download): nothing to report
        super().handle_error(request, client_address)


def make_server(port: int = 8000, host: str = "127.0.0.1", verbose: bool = False,
                models: Path | None = None, openai: bool = False) -> ThreadingHTTPServer:
    """The server; openai: also OpenAI's API under /v1/ (then the browser runtime may be missing:
    the API needs none of it)."""
    dist = web_dist()
    if not openai and not (dist / "nomoat.js").is_file():
        raise ModelNotFoundError(f"The browser runtime is not built ({dist}/nomoat.js is missing); run 'make web'.")
    root = repo_root()
    site = root / "examples" / "chat" if root else dist
    models = models or models_home()
    roots = [("/models/", models), ("/", site), ("/", dist)]
    if root:
        roots.insert(1, ("/rag/", root / "examples" / "rag"))
    api = None
    if openai:
        from .openai_server import OpenAIApi

        api = OpenAIApi(models, model_index)  # the index passed in: openai_server never imports serve
    handler = type("NomoatHandler", (Handler,), {"roots": roots, "models": models, "api": api})
    server = Server((host, port), partial(handler))
    server.verbose = verbose  # type: ignore[attr-defined]
    server.api = api
    return server


def serve(port: int = 8000, host: str = "127.0.0.1", verbose: bool = False, openai: bool = False) -> None:
    server = make_server(port, host, verbose, openai=openai)
    url = f"http://{host}:{server.server_address[1]}/"
    if (web_dist() / "nomoat.js").is_file():
        print(f"nomoat: serving the chat demo at {url}  (Ctrl-C stops)", file=sys.stderr)
    else:
        print(f"nomoat: serving at {url} without the chat demo (the browser runtime is not built: 'make web')  "
              "(Ctrl-C stops)", file=sys.stderr)
    if openai:
        print(f"nomoat: OpenAI's API at {url}v1 (base_url; any api_key), models from {server.api.models.folder}",
              file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
