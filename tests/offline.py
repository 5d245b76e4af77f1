"""The test browser is kept off the network, and every request that tries to leave is seen.

Every Chromium the tests start gets `browser_flags()`: its proxy is a local trap (NetTrap) that
records each request it is sent and refuses it (403), and its host resolver maps every name but
loopback to nothing. Chromium sends loopback requests directly (its implicit proxy bypass), so the
served pages, models and runtime work; anything else, a page's fetch or the browser's own
update/sign-in lookups, ends in the trap. conftest.py fails any test during which the trap saw a
request that is not one of Chromium's own service calls (BROWSER_OWN: refused too, and counted),
whatever browser or context the test used.
"""

from __future__ import annotations

import socketserver
import threading

CHROMIUM = "/usr/bin/chromium"
BASE_FLAGS = ["--no-sandbox", "--no-first-run", "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--disable-quic", "--disable-domain-reliability", "--no-pings"]
# Chromium keeps only the last --disable-features, so this list repeats Playwright's own (its
# chromiumSwitches.ts) and adds the background services that still called out in these tests.
DISABLED_FEATURES = [
    "AvoidUnnecessaryBeforeUnloadCheckSync", "DestroyProfileOnBrowserClose", "HttpsUpgrades",
    "HttpsFirstBalancedModeAutoEnable", "LensOverlay", "MediaRouter", "PaintHolding", "ThirdPartyStoragePartitioning",
    "AvoidCorsURLLoaderRestartOnRedirect", "OptimizationHints", "NetworkTimeServiceQuerying", "AimEnabled",
    "PreconnectToSearch",  # Playwright's, to here
    "AutofillServerCommunication",  # content-autofill.googleapis.com on the first form
]
# Chromium's own services, which some runs still call despite the flags above (sign-in's ListAccounts,
# the component/extension updater): refused like everything else, counted, but not the product's.
BROWSER_OWN = ("accounts.google.com", "update.googleapis.com", "clients2.google.com", "content-autofill.googleapis.com",
               "optimizationguide-pa.googleapis.com", "redirector.gvt1.com", "edgedl.me.gvt1.com",
               "firefox.settings.services.mozilla.com")  # Firefox's remote settings (tests/browsers/drivers.py)
RESOLVER = "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"


class NetTrap:
    """An HTTP proxy on 127.0.0.1 that answers every request 403 and remembers its request line."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.browser_own = 0  # Chromium's own service calls refused so far
        self._lock = threading.Lock()
        self._server: socketserver.ThreadingTCPServer | None = None

    def start(self) -> int:
        if self._server is None:
            trap = self

            class Handler(socketserver.StreamRequestHandler):
                def handle(self) -> None:
                    line = self.rfile.readline(4096).decode("latin-1").strip()
                    if line:
                        with trap._lock:
                            trap.seen.append(line)
                    self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

            socketserver.ThreadingTCPServer.daemon_threads = True
            self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
            threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self._server.server_address[1]

    def take(self) -> tuple[list[str], list[str]]:
        """(the product's requests, Chromium's own) seen since the last take()."""
        with self._lock:
            seen, self.seen = self.seen, []
        own = [line for line in seen if _host(line) in BROWSER_OWN]
        self.browser_own += len(own)
        return [line for line in seen if _host(line) not in BROWSER_OWN], own


def _host(request_line: str) -> str:
    """The host a proxy request line names: 'CONNECT host:443 HTTP/1.1' or 'GET http://host/... HTTP/1.1'."""
    parts = request_line.split()
    target = parts[1] if len(parts) > 1 else ""
    if "://" in target:
        target = target.split("://", 1)[1].split("/", 1)[0]
    if target.startswith("["):
        return target[1:target.find("]")]
    return target.rsplit(":", 1)[0] if target.count(":") == 1 else target


TRAP = NetTrap()


def browser_flags() -> list[str]:
    """Chromium's flags for every test browser: headless-friendly, no background services, and
    off the network (the proxy is the trap; names other than loopback do not resolve)."""
    return [*BASE_FLAGS, "--disable-features=" + ",".join(DISABLED_FEATURES),
            f"--proxy-server=http://127.0.0.1:{TRAP.start()}", f"--host-resolver-rules={RESOLVER}"]
