"""One driver per browser engine: each opens `url` (the chat demo served by the test), runs
check.js's run(options) in the page and returns {browser: its version, report}.

- Chromium (Debian's chromium) and Firefox (Debian's firefox-esr) through puppeteer-core from npm
  (puppeteer_driver.mjs): CDP and WebDriver BiDi, headless.
- WebKit (Debian's webkit2gtk-driver: WebKitWebDriver driving its MiniBrowser) through Selenium,
  on an Xvfb display this driver starts (WebKitGTK has no headless mode).

Every browser is kept off the network as offline.py keeps Chromium: its proxy is the trap, which
refuses and records every request that would leave loopback."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

from offline import CHROMIUM, TRAP, browser_flags

HERE = Path(__file__).parent
FIREFOX = "/usr/bin/firefox-esr"
WEBKIT_DRIVER = "/usr/bin/WebKitWebDriver"
MINIBROWSER = "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser"
TIMEOUT = 240  # s, for the whole report


def missing(engine: str) -> str | None:
    """Why `engine` cannot run here (the command that installs it), or None."""
    need = {"chromium": [CHROMIUM], "firefox": [FIREFOX], "webkit": [WEBKIT_DRIVER, MINIBROWSER, "/usr/bin/Xvfb"]}
    absent = [p for p in need[engine] if not os.path.exists(p)]
    if absent:
        return (f"{', '.join(absent)} missing: 'sudo apt-get install -y firefox-esr webkit2gtk-driver xvfb chromium' "
                "(make browser does it where it can)")
    return None


def firefox_prefs() -> dict:
    """Firefox's proxy is the trap (loopback goes direct: network.proxy.allow_hijacking_localhost is
    off by default), and its own background services stay quiet."""
    port = TRAP.start()
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


def _puppeteer(engine: str, url: str, options: dict) -> dict:
    job = {"url": url, "options": options, "timeoutMs": TIMEOUT * 1000}
    if engine == "firefox":
        job |= {"browser": "firefox", "executable": FIREFOX, "args": [], "prefs": firefox_prefs()}
    else:
        job |= {"browser": "chrome", "executable": CHROMIUM, "args": browser_flags(), "prefs": {}}
    r = subprocess.run(["node", str(HERE / "puppeteer_driver.mjs"), json.dumps(job)], capture_output=True, text=True,
                       timeout=TIMEOUT + 60)
    if r.returncode != 0 or not r.stdout.strip():
        raise RuntimeError(f"{engine} driver failed ({r.returncode}):\n{r.stderr[-4000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


class Xvfb:
    """A virtual X display for the lifetime of a `with` block (its number picked by Xvfb itself)."""

    def __enter__(self) -> str:
        read, write = os.pipe()
        self.proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-nolisten", "tcp", "-screen", "0",
                                      "1280x800x24"], pass_fds=(write,), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        os.close(write)
        with os.fdopen(read) as f:
            number = f.readline().strip()
        if not number:
            self.proc.kill()
            raise RuntimeError("Xvfb did not start")
        return f":{number}"

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _webkit(url: str, options: dict) -> dict:
    from selenium import webdriver
    from selenium.webdriver.common.proxy import Proxy
    from selenium.webdriver.webkitgtk.options import Options
    from selenium.webdriver.webkitgtk.service import Service

    trap = f"127.0.0.1:{TRAP.start()}"
    opts = Options()
    opts.binary_location = MINIBROWSER
    opts.proxy = Proxy({"proxyType": "manual", "httpProxy": trap, "sslProxy": trap,
                        "noProxy": ["127.0.0.1", "localhost"]})
    with Xvfb() as display, tempfile.TemporaryDirectory() as home:
        # a fresh HOME: no settings, cache or cookies from another run
        env = {**os.environ, "DISPLAY": display, "HOME": home, "XDG_CACHE_HOME": f"{home}/cache",
               "XDG_DATA_HOME": f"{home}/data", "XDG_CONFIG_HOME": f"{home}/config"}
        driver = webdriver.WebKitGTK(options=opts, service=Service(WEBKIT_DRIVER, env=env))
        try:
            driver.set_script_timeout(TIMEOUT)
            driver.get(url)
            report = driver.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "import('/checks/check.js').then((m) => m.run(arguments[0])).then(done,"
                " (e) => done({driverError: String(e && e.stack || e)}));", options)
            version = driver.capabilities.get("browserVersion", "")
        finally:
            driver.quit()
    return {"browser": f"WebKitGTK {version}", "report": report}


def run(engine: str, url: str, options: dict) -> dict:
    """check.js's report from `engine` ("chromium", "firefox" or "webkit") on the page at `url`."""
    if engine == "webkit":
        return _webkit(url, options)
    return _puppeteer(engine, url, options)
