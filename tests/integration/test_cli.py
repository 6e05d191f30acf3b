"""The one-shot commands: `-t` and `audit verify` (SPEC sections 1, 2, 7)."""
import hashlib
import json
import os
import re
import shutil

from lib import eq


def write_conf(t, name, conf):
    path = os.path.join(t.dir, name)
    with open(path, "w") as f:
        json.dump(conf, f, indent=1)
    return path


def test_config_check(t):
    """17. `-t`: a valid config exits 0; an invalid one lists every problem
    with its JSON path and exits 1, without echoing the secrets it holds."""
    good = write_conf(t, "good.json", t.conf())
    r = t.run_bin("-t", "-c", good)
    eq(r.returncode, 0, f"exit code of -t on a valid config (stderr {r.stderr[-300:]!r})")

    conf = t.conf()
    clear_token = "Q7W3E9R2T5Y8U1I4O6P0ASDFGHJKLZXC"
    conf["bogus"] = 1                                                 # unknown key
    conf["clients"]["billing"]["source"] = ["127.0.0.0/8", "10.0.0.1/8"]  # host bits
    conf["clients"]["support"]["whm_token"] = clear_token              # clear text
    conf["clients"]["billing"]["allow"]["createacct"]["username"]["pattern"] = "^[a-z("
    conf["clients"]["old"] = t.client("old")
    conf["clients"]["old"]["keys"] = [t.key("old")]                   # key in clear
    bad = write_conf(t, "bad.json", conf)
    r = t.run_bin("-t", "-c", bad)
    eq(r.returncode, 1, f"exit code of -t on an invalid config (stderr {r.stderr[-300:]!r})")
    lines = [l for l in r.stderr.splitlines() if l.startswith(bad + ": ")]
    paths = [l[len(bad) + 2:].split(": ", 1)[0] for l in lines]
    want = ["$.bogus", "$.clients.billing.source[1]", "$.clients.support.whm_token",
            "$.clients.billing.allow.createacct.username.pattern",
            "$.clients.old.keys[0]"]
    missing = [p for p in want if p not in paths]
    assert not missing, f"problems not reported: {missing}; stderr: {r.stderr[-600:]!r}"
    for line in lines:
        assert re.match(re.escape(bad) + r": \$\S*: \S", line), f"bad problem line {line!r}"
    for secret, what in ((clear_token, "clear token"), (t.key("old"), "clear key")):
        assert secret not in r.stderr + r.stdout, f"-t printed the {what}"

    # A token file that others can read is refused with its path.
    conf = t.conf()
    loose = os.path.join(t.dir, "loose_token")
    shutil.copy(t.token_file, loose)
    os.chmod(loose, 0o644)
    conf["clients"]["support"]["whm_token"] = {"file": loose}
    path = write_conf(t, "loose.json", conf)
    r = t.run_bin("-t", "-c", path)
    eq(r.returncode, 1, "exit code of -t with a world-readable token file")
    assert f"{path}: $.clients.support.whm_token: " in r.stderr, \
        f"no problem line for the token file: {r.stderr[-300:]!r}"
    assert t.session.token not in r.stderr + r.stdout, "-t printed the token"


def verify(t, *files):
    r = t.run_bin("audit", "verify", *files)
    return r.returncode, (r.stdout + r.stderr)


def broken_line(out, path):
    m = re.search(r"BROKEN: " + re.escape(path) + r":(\d+):", out)
    return int(m.group(1)) if m else None


def test_audit_verify(t):
    """18. `audit verify` accepts the trail a run produced and names the
    line after an edit, a deletion or a swap."""
    g = t.gate()
    key = t.key("billing")
    for path in ("/json-api/listaccts?api.version=1",
                 "/json-api/removeacct?api.version=1&user=cust1",
                 "/json-api/accountsummary?api.version=1&user=cust1",
                 "/json-api/listaccts?api.version=1&search=cust2"):
        g.curl(path, auth=f"Bearer {key}")
    g.wait_audit(lambda rs: len([x for x in rs if x["type"] in ("deny", "response")]) >= 4,
                 what="four final records")
    eq(g.stop(), 0, "exit code after SIGTERM")
    with open(g.audit_path, "rb") as f:
        lines = f.read().split(b"\n")
    eq(lines[-1], b"", "the audit file ends with a newline")
    lines = lines[:-1]
    eq(len(lines), 9, "records (start, 3 x request+response, deny, stop)")

    # The chain as SPEC section 7 defines it, checked independently.
    prev = "0" * 64
    for i, line in enumerate(lines, 1):
        rec = json.loads(line)
        eq(rec["seq"], i, f"seq of line {i}")
        eq(rec["prev"], prev, f"prev of line {i}")
        prev = hashlib.sha256(line).hexdigest()
    eq(json.loads(lines[-1])["event"], "stop", "last record")

    rc, out = verify(t, g.audit_path)
    eq(rc, 0, f"verify of the intact trail: {out.strip()[-300:]!r}")
    assert out.startswith("OK"), f"verify output {out!r}"

    def tampered(name, new_lines):
        path = os.path.join(t.dir, name)
        with open(path, "wb") as f:
            f.write(b"\n".join(new_lines) + b"\n")
        rc, out = verify(t, path)
        eq(rc, 1, f"verify exit code after {name}: {out.strip()[-200:]!r}")
        n = broken_line(out, path)
        assert n is not None, f"verify after {name} named no line: {out.strip()[-200:]!r}"
        return n

    # Edit one field of line 3 (a response record): the chain breaks there
    # or at the next line, whose prev no longer matches.
    i = next(n for n, l in enumerate(lines) if b'"type":"response"' in l and n >= 2)
    assert b'"status":200' in lines[i], lines[i]
    edited = list(lines)
    edited[i] = lines[i].replace(b'"status":200', b'"status":201', 1)
    n = tampered("edited.jsonl", edited)
    assert n in (i + 1, i + 2), f"edit of line {i + 1} reported at line {n}"

    n = tampered("deleted.jsonl", lines[:4] + lines[5:])
    eq(n, 5, "line reported after deleting line 5")

    swapped = list(lines)
    swapped[4], swapped[5] = lines[5], lines[4]
    n = tampered("swapped.jsonl", swapped)
    eq(n, 5, "line reported after swapping lines 5 and 6")

    # The original is untouched and still verifies.
    eq(verify(t, g.audit_path)[0], 0, "verify of the original afterwards")
