"""A reopen after SIGUSR1 that fails (SPEC section 9; issue "Production
rollout", observation 4): /readyz says not ready and the failure is
counted, calls go on into the old file, whmgate tries again every second,
and once the path can be opened it is ready again and the chain goes on
across the two files."""
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request

from lib import eq, free_port, wait_until


def admin(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(text, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(r"^" + re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "")
                  + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def test_audit_reopen_failure_not_ready(t):
    conf = t.conf()
    port = free_port()
    conf["admin"] = f"127.0.0.1:{port}"
    g = t.gate(conf)
    auth = f"Bearer {t.key('billing')}"
    path = g.audit_path
    eq(admin(port, "/readyz")[0], 200, "/readyz before")
    eq(g.curl("/json-api/listaccts", auth=auth).status, 200, "a call before")
    # logrotate's rename, and something at the path that cannot be
    # opened as the new file.
    os.rename(path, path + ".1")
    os.mkdir(path)
    g.proc.send_signal(signal.SIGUSR1)
    wait_until(lambda: admin(port, "/readyz")[0] == 503, 5 * t.session.slow,
               what="/readyz 503 after the failed reopen")
    st, text = admin(port, "/metrics")
    eq(metric(text, "whmgate_audit_failures_total", kind="reopen"), 1.0, "reopen failures")
    eq(metric(text, "whmgate_audit_writable"), 0.0, "whmgate_audit_writable")
    r = g.curl("/json-api/listaccts", auth=auth)
    eq(r.status, 200, "a call while the reopen fails (written to the old file)")
    time.sleep(2.2)                     # two retries that still fail
    st, text = admin(port, "/metrics")
    eq(metric(text, "whmgate_audit_failures_total", kind="reopen"), 1.0,
       "a reopen that keeps failing counts once")
    os.rmdir(path)
    wait_until(lambda: admin(port, "/readyz")[0] == 200, 5 * t.session.slow,
               what="/readyz 200 once the path can be opened")
    eq(g.curl("/json-api/listaccts", auth=auth).status, 200, "a call after")
    wait_until(lambda: os.path.exists(path) and os.path.getsize(path) > 0, 5,
               what="lines in the new file")
    eq(g.stop(), 0, "exit code")
    r = t.run_bin("audit", "verify", path, path + ".1")
    eq(r.returncode, 0, f"audit verify across the two files: {r.stdout} {r.stderr}")
