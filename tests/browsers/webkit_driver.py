"""Runs check.js in WebKit (Debian's webkit2gtk-driver: WebKitWebDriver driving its MiniBrowser)
through Selenium, on an Xvfb display of its own (WebKitGTK has no headless mode), and prints the
report as one line of JSON. drivers.py starts it with one JSON argument: {url, options, proxy
(host:port), timeoutMs, log}. The page's console goes to WebKitWebDriver's log (the file `log`),
shown on a failure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.proxy import Proxy
from selenium.webdriver.webkitgtk.options import Options
from selenium.webdriver.webkitgtk.service import Service

WEBKIT_DRIVER = "/usr/bin/WebKitWebDriver"
MINIBROWSER = "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser"
RUN = ("const done = arguments[arguments.length - 1];"
       "import('/checks/check.js').then((m) => m.run(arguments[0]))"
       ".then(done, (e) => done({driverError: String(e && e.stack || e)}));")


START = 15  # s: a WebKitWebDriver session that has not started by then (it takes ~1 s) never will: exit STALLED
STALLED = 75  # drivers.py runs this again


def stalled(*_) -> None:
    say(f"the session did not start in {START} s")
    os._exit(STALLED)  # the process group (WebKitWebDriver, MiniBrowser, Xvfb) is ended by drivers.py


def say(what: str) -> None:
    """Where the driver is, on stderr (shown when it fails or hangs)."""
    print(f"webkit_driver: {what}", file=sys.stderr, flush=True)


def xvfb() -> tuple[subprocess.Popen, str]:
    """A virtual X display (its number picked by Xvfb itself) and its name."""
    read, write = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-nolisten", "tcp", "-screen", "0", "1280x800x24"],
                            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as f:
        number = f.readline().strip()
    if not number:
        proc.kill()
        raise RuntimeError("Xvfb did not start")
    return proc, f":{number}"


def main(job: dict) -> dict:
    opts = Options()
    opts.binary_location = MINIBROWSER
    opts.add_argument("--automation")  # WebKitWebDriver matches no capabilities when args are absent
    opts.add_argument("--enable-write-console-messages-to-stdout=true")  # into the driver's log
    opts.proxy = Proxy({"proxyType": "manual", "httpProxy": job["proxy"], "sslProxy": job["proxy"],
                        "noProxy": ["127.0.0.1", "localhost"]})
    display, name = xvfb()
    try:
        with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as home:
            log = Path(job["log"])
            # a fresh HOME: no settings, cache or storage from another run
            env = {**os.environ, "DISPLAY": name, "HOME": home, "NO_AT_BRIDGE": "1", "GTK_A11Y": "none"}
            service = Service(WEBKIT_DRIVER, env=env, log_output=str(log))
            say("starting WebKitWebDriver and MiniBrowser")
            signal.signal(signal.SIGALRM, stalled)
            signal.alarm(START)
            driver = webdriver.WebKitGTK(options=opts, service=service)
            signal.alarm(0)
            try:
                driver.set_script_timeout(job["timeoutMs"] / 1000)
                say(f"opening {job['url']}")
                driver.get(job["url"])
                say("running check.js")
                report = driver.execute_async_script(RUN, job["options"])
                return {"browser": f"WebKitGTK {driver.capabilities.get('browserVersion', '')}", "report": report}
            except WebDriverException as e:
                raise RuntimeError(f"{e.msg}\n{log.read_text(errors='replace')[-4000:]}") from e
            finally:
                driver.quit()
    finally:
        display.terminate()
        display.wait(10)


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
