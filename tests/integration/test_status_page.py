"""The admin listener's /status page (SPEC section 9), as an operator sees
it: rendered by a real headless browser (Debian's chromium), a screenshot
taken, and the page's numbers checked against /metrics after known
traffic. No secret and no parameter value on it."""
import os
import re
import shutil
import subprocess
import urllib.request

from lib import eq, free_port

LIST = "/json-api/listaccts?api.version=1&search=zq8marker"

CHROMIUM = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.headers.get("Content-Type"), r.read().decode()


def metrics_totals(text):
    out = {}
    for line in text.splitlines():
        m = re.match(r'whmgate_requests_total\{client="([^"]+)",function="[^"]+",'
                     r'decision="([^"]+)"\} (\d+)', line)
        if m:
            k = f"{m.group(1)}.{m.group(2)}"
            out[k] = out.get(k, 0) + int(m.group(3))
    return out


def page_numbers(html):
    return {k: int(v) for k, v in re.findall(r'data-k="([^"]+)">(\d+)<', html)}


def test_status_page(t):
    browser = shutil.which("chromium")
    assert browser, "chromium is missing (make deps installs it)"
    conf = t.conf()
    admin = free_port()
    conf["admin"] = f"127.0.0.1:{admin}"
    conf["clients"]["support"]["rate"] = {"per_second": 0.01, "burst": 2}
    conf["clients"]["support"]["expires"] = "2099-01-01T00:00:00Z"
    # A candidate that would refuse what billing does: its mismatches show.
    conf["clients"]["billing"]["candidate"] = {"accountsummary": {}}
    g = t.gate(conf)
    billing, support = f"Bearer {t.key('billing')}", f"Bearer {t.key('support')}"
    calls = [(LIST, billing, 200)] * 3 + [
        ("/json-api/removeacct?user=cust9", billing, 403),
        (LIST, f"Bearer {t.key('stranger')}", 401),
        (LIST, support, 200), (LIST, support, 200), (LIST, support, 429)]
    for url, auth, want in calls:
        eq(g.curl(url, auth=auth).status, want, f"status of {url}")
    g.wait_audit(lambda rs: sum(r["type"] in ("deny", "response") for r in rs) >= len(calls),
                 what="final records")

    status, ctype, html = get(f"http://127.0.0.1:{admin}/status")
    eq((status, ctype.split(";")[0]), (200, "text/html"), "GET /status")
    _, _, mtext = get(f"http://127.0.0.1:{admin}/metrics")
    nums = page_numbers(html)
    want = metrics_totals(mtext)
    for k, v in want.items():
        eq(nums.get(k), v, f"the page's {k} vs /metrics")
    eq((nums["billing.allow"], nums["billing.forbidden"], nums["support.allow"],
        nums["support.rate_limited"], nums["unknown.unauthenticated"]), (3, 1, 2, 1, 1),
       "the page's counts of the calls made")
    cand = {f"{m.group(1)}.{m.group(2)}": int(float(m.group(3))) for m in re.finditer(
        r'whmgate_candidate_mismatches_total\{client="([^"]+)",kind="([^"]+)"\} (\S+)', mtext)}
    eq((nums["billing.would_refuse"], nums["billing.would_allow"]),
       (cand.get("billing.would_refuse", 0), cand.get("billing.would_allow", 0)),
       "candidate mismatches on the page vs /metrics")
    eq((nums["billing.would_refuse"], nums["billing.would_allow"]), (3, 0),
       "billing's candidate would refuse its three listaccts calls")
    recs = g.audit()
    eq(nums["audit.records"], len(recs), "records on the page vs the audit file")
    eq(nums["audit.failures"], 0, "audit failures")
    assert nums["upstream.open"] >= 1, nums
    for secret in (t.session.token, t.key("billing"), t.key("support"), "zq8marker",
                   "cust9", "<script"):
        assert secret not in html, f"{secret[:12]!r} on the status page"
    assert "2099-01-01" in html, "support's key expiry"

    # As a person sees it: a real browser renders it (no JavaScript needed)
    # and takes a screenshot; the DOM it built holds the same numbers.
    png = os.path.join(t.dir, "status.png")
    prof = os.path.join(t.dir, "chromium-profile")
    url = f"http://127.0.0.1:{admin}/status"
    r = subprocess.run([browser, *CHROMIUM, f"--user-data-dir={prof}",
                        "--disable-javascript", "--window-size=1280,900",
                        f"--screenshot={png}", url],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and os.path.exists(png), f"chromium: {r.stderr[-500:]}"
    with open(png, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10000, f"screenshot {len(data)} bytes"
    dom = subprocess.run([browser, *CHROMIUM, f"--user-data-dir={prof}",
                          "--disable-javascript", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120).stdout
    dn = page_numbers(dom)
    eq((dn.get("billing.allow"), dn.get("support.rate_limited")), (3, 1),
       "numbers in the browser's DOM")
    keep = os.environ.get("WHMGATE_STATUS_PNG")
    if keep:
        shutil.copy(png, keep)
    t.note(f"screenshot {len(data)} bytes")
