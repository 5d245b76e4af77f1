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
    (models / "escape").symlink_to(models.parent)  # a linked package folder: anything in it is served ...
    inner = tmp_path_factory.mktemp("linked")
    (inner / "nomoat.json").write_text("{}")
    (inner / "up").symlink_to(models.parent)  # ... but a link inside a package may not lead out of it
    (inner / "secret-link.txt").symlink_to(models.parent / "secret.txt")
    (models / "linked").symlink_to(inner)
    srv = make_server(0, models=models)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()


def get(port: int, path: str, host: str | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.putrequest("GET", path, skip_host=host is not None, skip_accept_encoding=True)
    if host is not None:
        conn.putheader("Host", host)
    conn.endheaders()
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
                                  "/models/%2e%2e/secret.txt", "/models/%2E%2E/secret.txt", "/models/nope/config.json",
                                  "//etc/passwd", "/models//etc/passwd", "/models/%2fetc/passwd",
                                  "/models/tiny/..%2f..%2fsecret.txt", "/models/%252e%252e/secret.txt",
                                  "/models/tiny/nomoat.json%00", "/models/%00/../secret.txt", "/models/tiny/",
                                  "/models/linked/up/secret.txt", "/models/linked/secret-link.txt",
                                  "/models/linked/up/", "/models/", "/pyodide/"])
def test_nothing_outside_its_folders(server, path):
    r = get(server, path)
    assert r.status == 404
    assert b"do not serve" not in r.read()


def test_a_linked_package_is_served(server):
    assert get(server, "/models/linked/nomoat.json").status == 200
    assert get(server, "/models/tiny/nomoat.json").status == 200


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST", "[::1]", None])
def test_loopback_names_are_answered(server, host):
    h = None if host is None else f"{host}:{server}"
    assert get(server, "/nomoat.js", h).status == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.1.evil.example", "localhost.evil.example",
                                  "", "0.0.0.0"])
def test_other_names_are_refused(server, host):
    """DNS rebinding: another site's name pointed at 127.0.0.1 must not read the models."""
    r = get(server, "/models/tiny/nomoat.json", host)
    assert r.status == 421
    assert b"tokenizer" not in r.read()


def test_binds_loopback_by_default(tiny_dir):
    srv = make_server(0, models=tiny_dir.parent)
    try:
        assert srv.server_address[0] == "127.0.0.1"
    finally:
        srv.server_close()
