"""One writer per audit trail: a second whmgate on the same audit file must
not start (two chains interleaved in one file would break both)."""
import os
import subprocess

from lib import eq, free_port


def test_second_instance_refused(t):
    conf = t.conf()
    g = t.gate(conf)
    r = g.curl("/json-api/listaccts?api.version=1", auth=f"Bearer {t.key('billing')}")
    eq(r.status, 200, "first instance serves")
    # the response record is written after the client has its answer: wait for it
    g.records(r.header("X-Request-Id"))
    lines = len(g.audit())
    other = dict(conf, listen=[f"127.0.0.1:{free_port()}"])
    path = os.path.join(t.dir, "second.json")
    import json
    with open(path, "w") as f:
        json.dump(other, f)
    s = t.session
    p = subprocess.run([*s.wrapper, s.bin, "-c", path], capture_output=True, text=True,
                       timeout=30 * s.slow)
    eq(p.returncode, 1, f"second instance exit code ({p.stderr.strip()[-200:]})")
    assert "in use by another process" in p.stderr, p.stderr[-300:]
    eq(len(g.audit()), lines, "records in the trail (the second wrote none)")
    r = g.curl("/json-api/listaccts?api.version=1", auth=f"Bearer {t.key('billing')}")
    eq(r.status, 200, "first instance still serves")
    v = t.run_bin("audit", "verify", conf["audit"]["file"])
    eq(v.returncode, 0, f"audit verify ({v.stdout.strip()})")
