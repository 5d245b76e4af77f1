"""One driver per browser engine, each a small program that opens `url` (the chat demo served by
the test), runs check.js's run(options) in the page and prints {browser: its version, report}:

- Chromium (Debian's chromium) and Firefox (Debian's firefox-esr): puppeteer_driver.mjs, through
  puppeteer-core from npm (CDP and WebDriver BiDi), headless.
- WebKit (Debian's webkit2gtk-driver: WebKitWebDriver driving its MiniBrowser): webkit_driver.py,
  through Selenium, on an Xvfb display of its own.

Every browser is kept off the network as offline.py keeps Chromium: its proxy is the trap, which
refuses and records every request that would leave loopback. A driver runs in its own process
group, ended whole (the browser, its driver, Xvfb) if it outlives its time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from offline import CHROMIUM, TRAP, browser_flags

from .webkit_driver import MINIBROWSER, STALLED, WEBKIT_DRIVER

HERE = Path(__file__).parent
FIREFOX = "/usr/bin/firefox-esr"
NEEDS = {"chromium": [CHROMIUM], "firefox": [FIREFOX], "webkit": [WEBKIT_DRIVER, MINIBROWSER, "/usr/bin/Xvfb"]}
SECTION = 90  # s: check.js gives up on a section still running after this (and skips the rest)
TIMEOUT = 300  # s: the driver, browser start and end included (a whole run takes 15-50 s here)


def missing(engine: str) -> str | None:
    """Why `engine` cannot run here (with the command that installs it), or None."""
    absent = [p for p in NEEDS[engine] if not os.path.exists(p)]
    if absent:
        return (f"{', '.join(absent)} missing: run 'sudo apt-get install -y chromium firefox-esr webkit2gtk-driver "
                "xvfb' (make browser does it where it can)")
    return None


def firefox_prefs(port: int) -> dict:
    """Firefox's proxy is the trap (loopback goes direct: network.proxy.allow_hijacking_localhost is
    off), and its own background services stay quiet (its remote settings still call: BROWSER_OWN)."""
    return {
        "network.proxy.type": 1, "network.proxy.http": "127.0.0.1", "network.proxy.http_port": port,
        "network.proxy.ssl": "127.0.0.1", "network.proxy.ssl_port": port, "network.proxy.share_proxy_settings": True,
        "network.proxy.no_proxies_on": "", "network.proxy.allow_hijacking_localhost": False,
        "network.dns.disablePrefetch": True, "network.predictor.enabled": False, "network.prefetch-next": False,
        "network.captive-portal-service.enabled": False, "network.connectivity-service.enabled": False,
        "network.trr.mode": 5, "browser.safebrowsing.provider.mozilla.updateURL": "",
        "toolkit.telemetry.enabled": False, "toolkit.telemetry.unified": False,
        "app.normandy.enabled": False, "browser.region.network.url": "", "browser.region.update.enabled": False,
        "extensions.systemAddon.update.enabled": False, "extensions.blocklist.enabled": False,
        "browser.topsites.contile.enabled": False, "browser.newtabpage.activity-stream.feeds.topsites": False,
        "messaging-system.rsexperimentloader.enabled": False, "media.gmp-gmpopenh264.enabled": False,
    }


def command(engine: str, url: str, options: dict, log: Path) -> list[str]:
    port = TRAP.start()
    job = {"url": url, "options": {**options, "sectionMs": SECTION * 1000}, "timeoutMs": (TIMEOUT - 30) * 1000}
    if engine == "webkit":
        job |= {"proxy": f"127.0.0.1:{port}", "log": str(log)}
        return [sys.executable, str(HERE / "webkit_driver.py"), json.dumps(job)]
    if engine == "firefox":
        job |= {"browser": "firefox", "executable": FIREFOX, "args": [], "prefs": firefox_prefs(port)}
    else:
        job |= {"browser": "chrome", "executable": CHROMIUM, "args": browser_flags(), "prefs": {}}
    return ["node", str(HERE / "puppeteer_driver.mjs"), json.dumps(job)]


def run(engine: str, url: str, options: dict) -> dict:
    """check.js's report from `engine` ("chromium", "firefox" or "webkit") on the page at `url`."""
    for _ in range(3):  # WebKitWebDriver's session start sometimes stalls: webkit_driver.py then exits STALLED
        log = Path(tempfile.mkstemp(prefix=f"nomoat-{engine}-", suffix=".log")[1])
        proc = subprocess.Popen(command(engine, url, options, log), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            said = log.read_text(errors="replace")[-3000:] + err[-3000:]
            raise RuntimeError(f"{engine} driver still running after {TIMEOUT} s:\n{said}") from None
        finally:
            try:  # whatever it left running (a browser process, Xvfb)
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            log.unlink(missing_ok=True)
        if proc.returncode != STALLED:
            break
    if proc.returncode != 0 or not out.strip():
        raise RuntimeError(f"{engine} driver failed ({proc.returncode}):\n{err[-4000:]}")
    return json.loads(out.strip().splitlines()[-1])
