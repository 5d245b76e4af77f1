"""The test browser cannot reach the network, and a request that tries is seen (offline.py)."""

# ruff: noqa: F811
from __future__ import annotations

from offline import TRAP
from test_web import blank_page, browser_type_launch_args, models, server  # noqa: F401

OUTSIDE = ["http://example.com/x", "https://www.google.com/", "http://93.184.216.34/", "http://[2606:2800:220:1::]/"]


def test_requests_off_the_machine_fail_and_are_seen(browser, server):
    page = blank_page(browser, server)
    try:
        results = page.evaluate("""async (urls) => {
            const out = [];
            for (const u of urls) {
                try { const r = await fetch(u, {mode: "no-cors"}); out.push("answered " + r.status + " " + r.type); }
                catch (e) { out.push("failed"); }
            }
            const local = await fetch("/nomoat.js");
            out.push("local " + local.status);
            return out;
        }""", OUTSIDE)
    finally:
        page.close()
    seen, _ = TRAP.take()  # taken here, so the suite's offline check passes for this test
    assert results == ["failed"] * len(OUTSIDE) + ["local 200"]
    for url in OUTSIDE:
        host = url.split("/")[2]
        assert any(host in line for line in seen), (url, seen)

