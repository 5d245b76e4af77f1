"""`nomoat serve`: the headers cross-origin isolation needs, MIME types, and nothing outside its folders."""

from __future__ import annotations

import http.client
import threading

import pytest

from nomoat.serve import make_server


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_dir):
    models = tmp_path_factory.mktemp("served")
    (models / "tiny").symlink_to(tiny_dir)
    (models.parent / "secret.txt").write_text("do not serve")
    srv = make_server(0, models=models)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()


def get(port: int, path: str) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path)
    return conn.getresponse()


@pytest.mark.parametrize("path,ctype", [("/", "text/html"), ("/nomoat.js", "text/javascript"),
                                        ("/nomoat.mjs", "text/javascript"), ("/worker.mjs", "text/javascript"),
                                        ("/pyodide/pyodide.asm.wasm", "application/wasm"),
                                        ("/models/tiny/nomoat.json", "application/json")])
def test_isolation_headers_and_types(server, path, ctype):
    r = get(server, path)
    assert r.status == 200
    assert r.getheader("Cross-Origin-Opener-Policy") == "same-origin"
    assert r.getheader("Cross-Origin-Embedder-Policy") == "require-corp"
    assert r.getheader("Content-Type").startswith(ctype)


@pytest.mark.parametrize("path", ["/models/../secret.txt", "/models/tiny/../../secret.txt", "/../../etc/passwd",
                                  "/models/%2e%2e/secret.txt", "/models/nope/config.json"])
def test_nothing_outside_its_folders(server, path):
    r = get(server, path)
    assert r.status == 404
    assert b"do not serve" not in r.read()
