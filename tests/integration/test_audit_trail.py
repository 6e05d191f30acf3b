"""The audit trail contract (SPEC section 7, with sections 2 and 8): crash
durability, faults, tampering, restarts and rotation, HMAC, redaction,
outcomes, exactly-once records, PCI fields and the syslog copy."""
import errno
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import subprocess
import time
from urllib.parse import quote, urlencode

from auditlib import (TS_RE, ZEROS, Load, Rsyslog, StreamSink, admin_get, broken_at, by_id,
                      call, check_chain, check_exactly_once, kill9, last_hash_of, line_hash,
                      parse, read_trail, records, start_gate, system, verify, verify_ok)
from lib import check_error, eq, free_port, parse_head, read_response, wait_until

LIST = "/json-api/listaccts?api.version=1"


def relisten(conf):
    """The same config on a new port (a restart on the same audit file)."""
    return dict(conf, listen=[f"127.0.0.1:{free_port()}"])


def batch_body(*commands):
    """A batch form body: each sub-call is `fn?args`, encoded once more."""
    return "api.version=1&" + "&".join("command=" + quote(c, safe="") for c in commands)


def sha(b):
    return hashlib.sha256(b).hexdigest()


# ---------------------------------------------------------------- 1. kill -9

def kill9_under_load(t, fsync, seconds):
    """Runs 8 client threads for `seconds`, SIGKILLs whmgate and checks the
    file; returns (conf, complete lines, torn tail, note)."""
    t.standin.reset()
    conf = t.conf()
    conf["audit"].update(fsync=fsync, file=os.path.join(t.dir, f"kill9-{fsync}.jsonl"))
    g = t.gate(conf)
    billing = t.key("billing")
    wrong = billing[:-2] + ("AA" if not billing.endswith("AA") else "BB")
    auth = {"Authorization": f"Bearer {billing}"}
    form = dict(auth, **{"Content-Type": "application/x-www-form-urlencoded"})
    batch = batch_body("listaccts", "accountsummary?user=cust1")
    tag = fsync[0]

    def plan(tid, i):
        k = i % 6
        if k == 0:
            return "GET", LIST, None, auth, 200
        if k == 1:
            return ("GET", f"/json-api/createacct?api.version=1&username={tag}{tid}x{i}"
                    f"&domain={tag}{tid}x{i}.example", None, auth, 200)
        if k == 2:
            return "POST", "/json-api/batch", batch, form, 200
        if k == 3:
            return "GET", "/json-api/removeacct?api.version=1&user=cust2", None, auth, 403
        if k == 4:
            return "GET", LIST, None, {"Authorization": f"Bearer {wrong}"}, 401
        return ("GET", "/json-api/createacct?api.version=1&username=Bad&domain=b.example",
                None, auth, 403)

    load = Load(g, plan, threads=8)
    load.start()
    try:
        time.sleep(seconds)
        t_kill = time.monotonic()
        kill9(t, g)
    finally:
        load.stop()
    answers = list(load.answers)
    assert len(answers) > 50, f"only {len(answers)} answers under load"
    odd = [(rid, st, want) for rid, st, _, want in answers if st != want]
    assert not odd, f"unexpected statuses under load: {odd[:5]}"

    lines, torn = read_trail(g.audit_path)
    recs = parse(lines)
    check_chain(lines, what="trail after SIGKILL")
    if torn:
        cut = os.path.join(t.dir, "complete-lines.jsonl")
        with open(cut, "wb") as f:
            f.write(b"".join(l + b"\n" for l in lines))
        verify_ok(t, cut, what="verify of the complete lines after SIGKILL")
    else:
        verify_ok(t, g.audit_path, what="verify after SIGKILL")
    seen = check_exactly_once(recs, complete=False)
    requested = {rid for rid, types in seen.items() if "request" in types}

    # Durable before forwarding: whatever WHM got, and every 200 a client
    # received, has its request record in the file.
    whm_ids = [v for q in t.standin.requests() for k, v in q["headers"]
               if k.lower() == "x-request-id"]
    lost = [rid for rid in whm_ids if rid not in requested]
    assert not lost, f"{len(lost)} of {len(whm_ids)} calls WHM received have no request record"
    ok_ids = [rid for rid, st, _, _ in answers if st == 200]
    lost = [rid for rid in ok_ids if rid not in requested]
    assert not lost, f"{len(lost)} of {len(ok_ids)} answered 200s have no request record"
    # The writer does not lag: answers older than a second are complete.
    old = [(rid, st) for rid, st, at, _ in answers if at < t_kill - 1.0]
    missing = [(rid, st) for rid, st in old
               if seen.get(rid) not in (["deny"], ["request", "response"])]
    assert not missing, (f"{len(missing)} of {len(old)} answers given >1 s before the kill "
                         f"lack their final record: {missing[:4]}")
    # Not promised (a refusal is answered without waiting for its record):
    # how many answers the client got whose final record died with whmgate.
    unfinished = sum(1 for rid, st, _, _ in answers
                     if seen.get(rid) not in (["deny"], ["request", "response"]))
    note = (f"fsync {fsync}: {len(answers)} answers, {len(whm_ids)} reached WHM, "
            f"{len(lines)} lines, {unfinished} answers without a final record, "
            f"torn tail {len(torn)} bytes")
    return conf, lines, torn, note


def test_audit_trail_kill9_under_load(t):
    """1. SIGKILL under load (fsync always): every call WHM received and
    every 200 a client got has its request record on disk; answers older
    than a second have their final record; what is there verifies; a
    restart on the same file continues seq and chain."""
    conf, lines, torn, note = kill9_under_load(t, "always", 2.0)
    t.note(note)
    billing = t.key("billing")

    # Restart on the same file: the chain and seq continue.
    g2 = t.gate(relisten(conf))
    eq(call(g2, LIST, billing).status, 200, "a call after the restart")
    eq(g2.stop(), 0, "exit code of the restarted whmgate")
    lines2, torn2 = read_trail(g2.audit_path)
    eq(torn2, b"", "torn tail after the restart")
    eq(lines2[:len(lines)], lines, "the lines before the kill, after the restart")
    start = json.loads(lines2[len(lines)])
    eq((start["type"], start.get("event")), ("system", "start"), "first record after the restart")
    eq(start["seq"], len(lines) + 1, "seq of the start record after the restart")
    eq(start["prev"], sha(lines[-1]), "prev of the start record after the restart")
    eq(start.get("torn_line_sha256"), sha(torn) if torn else None, "start torn_line_sha256")
    eq(json.loads(lines2[-1]).get("event"), "stop", "last record")
    check_chain(lines2, what="trail after the restart")
    verify_ok(t, g2.audit_path, what="verify of the whole file after the restart")


def test_audit_trail_kill9_fsync_interval_never(t):
    """1b. The request record is written before any byte goes to WHM with
    every fsync mode: a SIGKILL (the page cache survives it) loses no
    request record of a call WHM received or a client got a 200 for."""
    for fsync in ("interval", "never"):
        t.note(kill9_under_load(t, fsync, 1.0)[3])


def test_audit_trail_workers_clean_stop(t):
    """1c. Three workers under load, then SIGTERM: after a clean stop every
    answered call has exactly one deny or one request + one response, every
    call WHM received has its request record, the stop record is last and
    the file verifies."""
    t.standin.reset()
    conf = t.conf()
    conf["workers"] = 3
    g = t.gate(conf)
    billing = t.key("billing")
    auth = {"Authorization": f"Bearer {billing}"}

    def plan(tid, i):
        if i % 3 == 2:
            return "GET", "/json-api/removeacct?api.version=1&user=cust2", None, auth, 403
        return "GET", LIST, None, auth, 200
    load = Load(g, plan, threads=8)
    load.start()
    try:
        time.sleep(1.5)
    finally:
        load.stop()
    eq(g.stop(), 0, "exit code")
    answers = list(load.answers)
    odd = [(rid, st, want) for rid, st, _, want in answers if st != want]
    assert not odd, f"unexpected statuses: {odd[:5]}"
    recs = records(g.audit_path)
    seen = check_exactly_once(recs, ids=[rid for rid, _, _, _ in answers])
    whm_ids = [v for q in t.standin.requests() for k, v in q["headers"]
               if k.lower() == "x-request-id"]
    lost = [rid for rid in whm_ids if seen.get(rid) != ["request", "response"]]
    assert not lost, f"{len(lost)} calls WHM received lack request+response: {lost[:4]}"
    eq((recs[-1]["type"], recs[-1].get("event")), ("system", "stop"), "last record")
    verify_ok(t, g.audit_path)
    t.note(f"{len(answers)} answers, {len(recs)} records")


# ---------------------------------------------------------------- 2. full disk

def fill(path):
    """Writes zeros until the file system is full."""
    with open(path, "wb", buffering=0) as f:
        for size in (65536, 4096, 256, 1):
            while True:
                try:
                    f.write(b"\0" * size)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break


def metric(port, name):
    st, body = admin_get(port, "/metrics")
    eq(st, 200, "/metrics status")
    ms = re.findall(rb"^" + name.encode() + rb"(?:\{[^}]*\})? ([0-9.e+]+)$", body, re.M)
    assert ms, f"{name} not in /metrics"
    return sum(float(v) for v in ms)      # over all its labels


def test_audit_trail_full_filesystem(t):
    """2. The audit file system fills up: calls get 503 audit_unavailable
    and never reach WHM, /readyz fails; once space is freed whmgate
    recovers by itself, writes an audit-fault record and then the deny
    records of the refused calls; the trail verifies."""
    key = t.key("billing")
    mnt = os.path.join(t.dir, "small")
    os.makedirs(mnt)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", mnt], check=True)
    g = None
    try:
        conf = t.conf()
        conf["audit"]["file"] = os.path.join(mnt, "audit.jsonl")
        admin = free_port()
        conf["admin"] = f"127.0.0.1:{admin}"
        g = t.gate(conf)
        eq(call(g, LIST, key).status, 200, "a call before the disk is full")
        eq(admin_get(admin, "/readyz")[0], 200, "/readyz before the disk is full")
        filler = os.path.join(mnt, "filler")
        fill(filler)

        # The audit file's last page may still take a record or two.
        refused = []
        for _ in range(60):
            r = call(g, LIST, key)
            if r.status != 200:
                refused.append(check_error(r, 503, "audit_unavailable"))
                break
        assert refused, "60 calls succeeded on a full file system"
        whm_before = len(t.standin.requests())
        for path in (LIST, LIST, "/json-api/createacct?api.version=1&username=full1"
                                 "&domain=full1.example"):
            refused.append(check_error(call(g, path, key), 503, "audit_unavailable"))
        denied = [check_error(call(g, "/json-api/removeacct?api.version=1&user=cust1", key),
                              403, "function_not_allowed"),
                  check_error(call(g, LIST, auth="Bearer whmg_" + "A" * 43), 401,
                              "unauthenticated")]
        eq(len(t.standin.requests()), whm_before, "requests WHM received while the disk is full")
        got = {v for q in t.standin.requests() for k, v in q["headers"]
               if k.lower() == "x-request-id"}
        eq(sorted(got & set(refused)), [], "refused calls that reached WHM")
        eq(admin_get(admin, "/readyz")[0], 503, "/readyz while the trail cannot be written")
        assert metric(admin, "whmgate_audit_failures_total") > 0, "audit failures not counted"

        os.remove(filler)
        t0 = time.monotonic()
        try:
            g.wait_audit(lambda rs: system(rs, "audit-fault"), timeout=4,
                         what="the audit-fault recovery record")
        except AssertionError as e:
            raise AssertionError(f"{e}; {responsive(g, admin)}") from None
        took = time.monotonic() - t0
        eq(admin_get(admin, "/readyz")[0], 200, "/readyz after recovery")
        after = call(g, LIST, key)
        eq(after.status, 200, "a call after recovery")
        last = after.header("X-Request-Id")
        # The response record of that call follows its answer: wait for it
        # too before counting records per id.
        recs = g.wait_audit(lambda rs: all(by_id(rs).get(rid) for rid in refused + denied)
                            and len(by_id(rs).get(last, [])) == 2,
                            what="the deny records of the refused calls")
        t.note(f"recovered {took:.2f} s after space was freed; {len(refused)} calls refused")
        assert took < 2.5 * t.session.slow, f"recovery took {took:.2f} s (want about 1 s)"
        faults = system(recs, "audit-fault")
        eq(len(faults), 1, "audit-fault records")
        fault = faults[0]
        eq(fault.get("state"), "recovered", "audit-fault state")
        assert fault.get("error"), f"audit-fault names no error: {fault}"
        assert str(fault.get("dropped")) == "0", f"records dropped: {fault}"
        at = recs.index(fault)
        seen = check_exactly_once(recs)
        for rid in refused + denied:
            eq(seen[rid], ["deny"], f"records of refused call {rid}")
            pos = next(i for i, r in enumerate(recs) if r.get("id") == rid)
            assert pos > at, \
                f"deny of {rid} (line {pos + 1}) before the audit-fault (line {at + 1})"
        for rid in refused:
            d = next(r for r in recs if r.get("id") == rid)
            eq((d["http"]["status"], d["decision"]["code"]), (503, "audit_unavailable"),
               f"deny record of {rid}")
        eq(g.stop(), 0, "exit code")
        verify_ok(t, g.audit_path, what="verify after the fault")
        check_chain(read_trail(g.audit_path)[0], what="trail after the fault")
    finally:
        if g:
            g.stop()
        if subprocess.run(["umount", mnt]).returncode != 0:
            subprocess.run(["umount", "-l", mnt])


def responsive(g, admin):
    """Whether whmgate still answers (for failure messages)."""
    out = []
    try:
        out.append(f"a call answers {call(g, LIST, g.ctx.key('billing'), timeout=3).status}")
    except OSError as e:
        out.append(f"a call gets no answer within 3 s ({type(e).__name__})")
    try:
        out.append(f"/readyz answers {admin_get(admin, '/readyz', timeout=3)[0]}")
    except OSError as e:
        out.append(f"/readyz gets no answer within 3 s ({type(e).__name__})")
    return ", ".join(out)


def test_audit_trail_dev_full(t):
    """2b. audit.file is /dev/full, so not even the start record can be
    written: whmgate refuses to start, or runs and refuses every call with
    503 (also after its once-a-second retry) and stops on SIGTERM; nothing
    reaches WHM."""
    key = t.key("billing")
    conf = t.conf()
    conf["audit"]["file"] = "/dev/full"
    admin = free_port()
    conf["admin"] = f"127.0.0.1:{admin}"
    g, rc = start_gate(t, conf)
    if rc is not None:
        t.gates.remove(g)
        assert rc != 0, "whmgate exited 0 at start with audit.file /dev/full"
        t.note(f"refuses to start (exit {rc})")
    else:
        for when in ("at once", "after the retry"):
            if when != "at once":
                time.sleep(1.5)
            try:
                for path in (LIST, "/json-api/createacct?api.version=1&username=dev1"
                                   "&domain=d.example"):
                    check_error(call(g, path, key, timeout=5), 503, "audit_unavailable")
                eq(admin_get(admin, "/readyz", timeout=5)[0], 503, "/readyz with /dev/full")
            except OSError as e:
                raise AssertionError(f"{when}: whmgate gives no answer ({type(e).__name__})")
        t.note("runs and refuses every call with 503")
    eq(t.standin.requests(), [], "requests WHM received with /dev/full")


# ---------------------------------------------------------------- 3. tampering

def field_spans(line):
    """[(key, value, start, end)] of a compact JSON object's top-level fields."""
    dec = json.JSONDecoder()
    assert line[0] == "{", line[:40]
    i, out = 1, []
    while line[i] != "}":
        key, i = json.decoder.scanstring(line, i + 1)
        assert line[i] == ":", line[i - 20:i + 20]
        val, end = dec.raw_decode(line, i + 1)
        out.append((key, val, i + 1, end))
        i = end + (line[end] == ",")
    return out


def changed(v):
    """A different value of the same kind (a timestamp one digit off, ...)."""
    if isinstance(v, bool):
        return not v
    if isinstance(v, (int, float)):
        return v + 1
    if isinstance(v, str):
        digits = [i for i, c in enumerate(v) if c.isdigit()]
        if digits:
            i = digits[-1]
            return v[:i] + str((int(v[i]) + 1) % 10) + v[i + 1:]
        return v + "x"
    if v is None:
        return 0
    if isinstance(v, list):
        return [changed(v[0])] + v[1:] if v else [0]
    if not v:
        return {"x": 0}
    k = next(iter(v))
    return dict(v, **{k: changed(v[k])})


def test_audit_trail_tampering_detected(t):
    """3. On copies of a real trail, editing any field of any line, deleting
    a middle line, swapping two lines, inserting a line (copied or forged
    with the right prev and seq) and changing a seq all make `audit verify`
    exit 1 and name the first line whose chain breaks. An edit of the last
    line shows in the last-line hash verify prints."""
    g = t.gate()
    key = t.key("billing")
    call(g, LIST, key)
    call(g, "/json-api/removeacct?api.version=1&user=cust1", key)
    call(g, "/json-api/createacct?api.version=1&username=tamp1&domain=tamp1.example", key)
    call(g, LIST, auth="Bearer whmg_" + "B" * 43)
    call(g, "/json-api/batch", key, "POST", batch_body("listaccts", "accountsummary?user=cust2"))
    eq(g.stop(), 0, "exit code")
    lines = read_trail(g.audit_path)[0]
    n = len(lines)
    eq(n, 10, "lines (start, 3 x request+response, 2 denies, stop)")
    out = verify_ok(t, g.audit_path)
    eq(last_hash_of(out), sha(lines[-1]), "last-line hash verify prints")
    seq = [json.loads(l)["seq"] for l in lines]

    k = [0]

    def copy(new_lines):
        k[0] += 1
        path = os.path.join(t.dir, f"tampered{k[0]}.jsonl")
        with open(path, "wb") as f:
            f.write(b"".join(l + b"\n" for l in new_lines))
        return path

    def expect(new_lines, want, what):
        path = copy(new_lines)
        eq(broken_at(t, path, what=what), want, f"line named after {what}")

    # Under valgrind each verify takes a second: fewer lines then.
    which = range(1, n + 1) if not t.session.wrapper else (1, n // 2, n)
    fields = 0
    for L in which:
        line = lines[L - 1].decode()
        for name, val, s, e in field_spans(line):
            new = (line[:s] + json.dumps(changed(val), ensure_ascii=False, separators=(",", ":"))
                   + line[e:]).encode()
            assert new != lines[L - 1]
            edited = lines[:L - 1] + [new] + lines[L:]
            fields += 1
            if name in ("seq", "prev") and L > 1:
                expect(edited, L, f"editing {name} of line {L}")
            elif L < n:
                expect(edited, L + 1, f"editing {name} of line {L}")
            else:
                rc, out = verify(t, copy(edited))
                eq(rc, 0, f"verify after editing {name} of the last line")
                assert last_hash_of(out) not in (None, sha(lines[-1])), \
                    f"editing {name} of the last line left the printed last-line hash"
    for L in range(2, n):
        expect(lines[:L - 1] + lines[L:], L, f"deleting line {L}")
    for L in range(1, n):
        swapped = list(lines)
        swapped[L - 1], swapped[L] = lines[L], lines[L - 1]
        expect(swapped, max(L, 2), f"swapping lines {L} and {L + 1}")
    for L in range(2, n + 1):
        expect(lines[:L - 1] + [lines[0]] + lines[L - 1:], L, f"inserting a copy of line 1 at {L}")
        forged = json.loads(lines[L - 2])
        forged.update(id="forged", seq=seq[L - 2] + 1, prev=sha(lines[L - 2]))
        forged_line = json.dumps(forged, separators=(",", ":")).encode()
        expect(lines[:L - 1] + [forged_line] + lines[L - 1:], L + 1,
               f"inserting a forged line (right prev and seq) at {L}")
    path = copy(lines)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 20)
    eq(broken_at(t, path, what="a cut last line"), n, "line named for a cut last line")
    t.note(f"{k[0]} tampered copies ({fields} field edits)")
    verify_ok(t, g.audit_path, what="the original afterwards")


# ---------------------------------------------------------------- 4. restarts

def test_audit_trail_restart_torn_line_rotation(t):
    """4. A restart continues seq and chain; a torn last line left while
    whmgate was stopped is cut at start and named by its SHA-256 in the
    start record; rename + SIGUSR1 starts a new file at seq 1 chained from
    the old file's last line, so `audit verify old new` passes."""
    key = t.key("billing")
    conf = t.conf()
    path = conf["audit"]["file"]
    g = t.gate(conf)
    call(g, LIST, key)
    eq(g.stop(), 0, "exit code, first run")
    lines1 = read_trail(path)[0]
    check_chain(lines1, what="first run")
    start = json.loads(lines1[0])
    eq((start.get("event"), start.get("version"), start.get("config"), start.get("seq"),
        start.get("prev"), start.get("torn_line_sha256")),
       ("start", t.session.version, g.conf_path, 1, ZEROS, None), "start record of a new trail")
    assert isinstance(start.get("config_digest"), str) and len(start["config_digest"]) >= 16, \
        f"start config_digest {start.get('config_digest')!r}"
    eq(json.loads(lines1[-1]).get("event"), "stop", "last record of the first run")

    g = t.gate(relisten(conf))
    call(g, "/json-api/removeacct?api.version=1&user=cust1", key)
    eq(g.stop(), 0, "exit code, second run")
    lines2, torn = read_trail(path)
    eq(torn, b"", "torn tail after a clean stop")
    eq(lines2[:len(lines1)], lines1, "first run's lines after the second")
    start = json.loads(lines2[len(lines1)])
    eq((start.get("event"), start["seq"], start["prev"], start.get("torn_line_sha256")),
       ("start", len(lines1) + 1, sha(lines1[-1]), None), "start record of the second run")
    check_chain(lines2, what="after a restart")
    verify_ok(t, path, what="verify after a restart")

    # A power loss mid-write: half a record, no newline.
    half = lines2[2][:len(lines2[2]) // 2]
    with open(path, "ab") as f:
        f.write(half)
    g = t.gate(relisten(conf))
    call(g, LIST, key)
    eq(g.stop(), 0, "exit code, third run")
    lines3, torn = read_trail(path)
    eq(torn, b"", "torn tail after the third run")
    eq(lines3[:len(lines2)], lines2, "earlier lines after the torn line was cut")
    start = json.loads(lines3[len(lines2)])
    eq((start.get("event"), start["seq"], start["prev"]),
       ("start", len(lines2) + 1, sha(lines2[-1])), "start record after a torn line")
    eq(start.get("torn_line_sha256"), sha(half), "start torn_line_sha256")
    check_chain(lines3, what="after the torn line")
    verify_ok(t, path, what="verify after the torn line")

    # logrotate: rename, then SIGUSR1.
    g = t.gate(relisten(conf))
    before = call(g, LIST, key).header("X-Request-Id")
    g.records(before)
    os.rename(path, path + ".1")
    os.kill(g.pid, signal.SIGUSR1)
    wait_until(lambda: os.path.exists(path), 3 * t.session.slow, what="the new audit file")
    after = call(g, LIST, key).header("X-Request-Id")
    g.records(after)
    eq(g.stop(), 0, "exit code, rotated run")
    old, torn_old = read_trail(path + ".1")
    new, torn_new = read_trail(path)
    eq((torn_old, torn_new), (b"", b""), "torn tails after rotation")
    check_chain(old, what="rotated file")
    check_chain(new, prev=sha(old[-1]), what="new file")     # seq from 1, chained
    verify_ok(t, path + ".1", path, what="verify old new")
    verify_ok(t, path, what="verify new (its first line is the anchor)")
    out = verify_ok(t, path, path + ".1", what="new before old (put in order by the links)")
    assert f"order: {path}.1 {path} (put in chain order" in out, out
    old_recs, new_recs = parse(old), parse(new)
    reopen_in = [name for name, rs in (("old", old_recs), ("new", new_recs))
                 if system(rs, "reopen")]
    eq(len(reopen_in), 1, "files holding the reopen record")
    eq(by_id(old_recs).get(before), ["request", "response"], "records of the call before")
    eq(by_id(new_recs).get(after), ["request", "response"], "records of the call after")
    eq(new_recs[-1].get("event"), "stop", "last record of the new file")
    check_exactly_once(old_recs + new_recs)
    t.note(f"the reopen record is in the {reopen_in[0]} file")


def test_audit_trail_sigusr1_without_rotation(t):
    """4b. SIGUSR1 when nothing renamed the file (logrotate's postrotate on
    a skipped rotation, a second signal): the same file is reopened and
    must keep counting seq (1, 2, 3... within a file) so it still verifies."""
    key = t.key("billing")
    g = t.gate()
    call(g, LIST, key)
    os.kill(g.pid, signal.SIGUSR1)
    g.wait_audit(lambda rs: system(rs, "reopen"), what="the reopen record")
    rid = call(g, LIST, key).header("X-Request-Id")
    g.records(rid)
    eq(g.stop(), 0, "exit code")
    lines = read_trail(g.audit_path)[0]
    seqs = [json.loads(l)["seq"] for l in lines]
    verify_ok(t, g.audit_path, what=f"verify after SIGUSR1 without a rename (seq {seqs})")
    check_chain(lines, what="file reopened in place")


# ---------------------------------------------------------------- 5. HMAC

def test_audit_trail_hmac(t):
    """5. With hmac_key_file the chain is HMAC-SHA256: verify fails without
    --key or with a wrong key and passes with it; redacted values are
    hmac-sha256:<hex> of the value under the key (newline stripped); a key
    file readable by others is refused."""
    secret = "hk-" + os.urandom(16).hex()
    keyfile = os.path.join(t.dir, "audit.key")
    fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    wrongfile = os.path.join(t.dir, "wrong.key")
    fd = os.open(wrongfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "x\n")
    key = secret.encode()

    conf = t.conf()
    conf["audit"]["hmac_key_file"] = keyfile
    g = t.gate(conf)
    billing = t.key("billing")
    pw1, pw2 = "Pw-" + os.urandom(6).hex(), "Pw-" + os.urandom(6).hex()
    r = call(g, f"/json-api/createacct?api.version=1&username=hm1&domain=hm1.example"
                f"&password={pw1}", billing)
    eq(r.status, 200, "createacct status")
    r = call(g, "/json-api/batch", billing, "POST",
             batch_body(f"createacct?username=hm2&domain=hm2.example&password={pw2}"))
    eq(r.status, 200, "batch status")
    r = call(g, f"/json-api/listaccts?api.version=1&search={billing}", billing)
    eq(r.status, 200, "listaccts status")
    eq(g.stop(), 0, "exit code")

    lines = read_trail(g.audit_path)[0]
    check_chain(lines, key=key, what="HMAC chain")
    recs = parse(lines)

    def mac(v):
        return "hmac-sha256:" + hmac.new(key, v.encode(), hashlib.sha256).hexdigest()
    reqs = [x for x in recs if x["type"] == "request"]
    eq(reqs[0]["whm"]["params"].get("password"), mac(pw1), "createacct password")
    eq(reqs[1]["whm"]["calls"][0]["params"].get("password"), mac(pw2), "batch sub-call password")
    eq(reqs[2]["whm"]["params"].get("search"), mac(billing), "a key in a value")
    raw = b"\n".join(lines)
    for what, v in (("password 1", pw1), ("password 2", pw2), ("billing key", billing),
                    ("hmac key", secret)):
        assert v.encode() not in raw, f"the {what} is in the audit file"

    eq(broken_at(t, g.audit_path, what="HMAC trail without --key"), 2, "line without --key")
    eq(broken_at(t, g.audit_path, g.audit_path, key=wrongfile, what="a wrong key"), 2,
       "line with a wrong key")
    verify_ok(t, g.audit_path, key=keyfile, what="verify --key")
    # Someone without the key edits line 4 and re-chains with SHA-256.
    forged = list(lines)
    forged[3] = forged[3].replace(b'"instance":"test"', b'"instance":"evil"')
    for i in range(4, len(forged)):
        rec = json.loads(forged[i])
        rec["prev"] = sha(forged[i - 1])
        forged[i] = json.dumps(rec, separators=(",", ":")).encode()
    path = os.path.join(t.dir, "forged.jsonl")
    with open(path, "wb") as f:
        f.write(b"".join(l + b"\n" for l in forged))
    eq(broken_at(t, path, key=keyfile, what="a re-chained forgery"), 5, "line of the forgery")

    # A restart continues the keyed chain.
    g = t.gate(relisten(conf))
    eq(call(g, LIST, billing).status, 200, "a call after the restart")
    eq(g.stop(), 0, "exit code after the restart")
    more = read_trail(g.audit_path)[0]
    eq(json.loads(more[len(lines)])["prev"], line_hash(lines[-1], key),
       "prev of the start record after a restart (HMAC of the last line)")
    check_chain(more, key=key, what="HMAC chain after a restart")
    verify_ok(t, g.audit_path, key=keyfile, what="verify --key after a restart")

    os.chmod(wrongfile, 0o644)
    conf["audit"]["hmac_key_file"] = wrongfile
    bad = os.path.join(t.dir, "bad.json")
    with open(bad, "w") as f:
        json.dump(conf, f)
    r = t.run_bin("-t", "-c", bad)
    eq(r.returncode, 1, "-t with a world-readable hmac_key_file")
    assert "$.audit.hmac_key_file" in r.stderr, f"no problem line: {r.stderr[-300:]!r}"
    assert secret not in r.stderr + r.stdout, "-t printed the key"


# ---------------------------------------------------------------- 6. redaction

def test_audit_trail_redaction(t):
    """6. Parameters named like secrets (any case, -N copies), names in
    audit.redact and values holding a whmgate key or the WHM token are
    [REDACTED] in plain calls, batch sub-calls, cpanel and uapi_cpanel
    calls and deny records; no secret appears anywhere in the file."""
    conf = t.conf()
    conf["audit"]["redact"] = ["contactemail"]
    conf["clients"]["billing"]["allow"] = {
        "listaccts": {}, "createacct": {}, "batch": {},
        "cpanel:Email::addpop": {}, "uapi_cpanel:Email::add_pop": {}}
    g = t.gate(conf)
    billing, token = t.key("billing"), t.session.token
    secrets = {}

    def sec(name):
        secrets[name] = f"S{len(secrets)}-{os.urandom(5).hex()}"
        return secrets[name]
    secret_names = ["password", "pass", "showpass", "api_token", "AccessToken", "sshkey",
                    "key", "client_secret", "SECRET", "session_id", "cpsession",
                    "Authorization", "authcode", "private_data", "pwhash", "passphrase",
                    "contactemail", "newpass-3"]
    params = [("username", "red1"), ("domain", "red1.example"), ("plan", "basic"),
              ("quota", "100")]
    params += [(n, sec(n)) for n in secret_names]
    params += [("notes", f"see {billing} here"), ("comment", f"token {token}")]
    r = call(g, "/json-api/createacct", billing, "POST", urlencode([("api.version", "1")] + params))
    eq(r.status, 200, f"createacct status {r.body[:200]!r}")
    plain = g.records(r.header("X-Request-Id"))[0]
    want = {"api.version": "1", "username": "red1", "domain": "red1.example",
            "plan": "basic", "quota": "100"}
    want.update({n: "[REDACTED]" for n in secret_names + ["notes", "comment"]})
    eq(plain["whm"]["params"], want, "createacct whm.params")

    sub = urlencode([("username", "red2"), ("domain", "red2.example"), ("password", sec("b1")),
                     ("contactemail", sec("b2")), ("notes", f"k={billing}"),
                     ("X-Auth-Code", sec("b3"))])
    r = call(g, "/json-api/batch", billing, "POST",
             batch_body("createacct?" + sub, "listaccts?" + urlencode({"search": token})))
    eq(r.status, 200, f"batch status {r.body[:200]!r}")
    calls = g.records(r.header("X-Request-Id"))[0]["whm"]["calls"]
    eq([c["function"] for c in calls], ["createacct", "listaccts"], "batch calls")
    eq(calls[0]["params"], {"username": "red2", "domain": "red2.example",
                            "password": "[REDACTED]", "contactemail": "[REDACTED]",
                            "notes": "[REDACTED]", "X-Auth-Code": "[REDACTED]"},
       "batch sub-call 0 params")
    eq(calls[1]["params"], {"search": "[REDACTED]"}, "batch sub-call 1 params")
    eq(g.records(r.header("X-Request-Id"))[0]["whm"]["params"], {"api.version": "1"},
       "batch whm.params (commands moved to calls)")
    r = call(g, "/json-api/listaccts?search=cust1", billing)
    eq(g.records(r.header("X-Request-Id"))[0]["whm"]["params"],
       {"api.version": "1", "search": "cust1"}, "whm.params when whmgate adds api.version")

    r = call(g, "/json-api/cpanel?" + urlencode(
        [("api.version", "1"), ("cpanel_jsonapi_module", "Email"),
         ("cpanel_jsonapi_func", "addpop"), ("cpanel_jsonapi_user", "cust1"),
         ("cpanel_jsonapi_apiversion", "2"), ("domain", "cust1.example"), ("email", "info"),
         ("password", sec("c1")), ("PassWord-2", sec("c2"))]), billing)
    eq(r.status, 200, f"cpanel status {r.body[:200]!r}")
    rec = g.records(r.header("X-Request-Id"))[0]["whm"]
    p = rec["params"]
    eq((p.get("password"), p.get("PassWord-2"), p.get("email"), p.get("cpanel_jsonapi_user")),
       ("[REDACTED]", "[REDACTED]", "info", "cust1"), "cpanel whm.params")
    eq(rec.get("target"), "cust1", "cpanel whm.target")
    eq(rec.get("calls"), [{"function": "cpanel", "module": "Email", "func": "addpop",
                           "user": "cust1"}], "cpanel whm.calls")

    r = call(g, "/json-api/uapi_cpanel", billing, "POST", urlencode(
        [("api.version", "1"), ("cpanel.module", "Email"), ("cpanel.function", "add_pop"),
         ("cpanel.user", "cust1"), ("email", "info"), ("password", sec("u1")),
         ("AuthToken", sec("u2")), ("quota", "10")]))
    eq(r.status, 200, f"uapi_cpanel status {r.body[:200]!r}")
    rec = g.records(r.header("X-Request-Id"))[0]["whm"]
    eq({k: rec["params"].get(k) for k in ("password", "AuthToken", "email", "quota")},
       {"password": "[REDACTED]", "AuthToken": "[REDACTED]", "email": "info", "quota": "10"},
       "uapi_cpanel whm.params")

    # Refused calls carrying secrets.
    r = call(g, "/json-api/createacct?api.version=1&username=red3&domain=red3.example"
                f"&password={sec('d1')}&contactemail={sec('d2')}", t.key("support"))
    d = g.records(check_error(r, 403, "function_not_allowed"))[0]
    eq((d["type"], d["whm"]["params"].get("password"), d["whm"]["params"].get("contactemail")),
       ("deny", "[REDACTED]", "[REDACTED]"), "deny record params")
    r = call(g, f"/json-api/createacct?api.version=1&username=red4&password={sec('d3')}"
                f"&password={sec('d4')}", billing)
    g.records(check_error(r, 400, "bad_request"))
    eq(g.stop(), 0, "exit code")

    with open(g.audit_path, "rb") as f:
        data = f.read()
    leaks = [n for n, v in secrets.items() if v.encode() in data]
    leaks += [w for w, v in (("billing key", billing), ("part of the billing key", billing[5:25]),
                             ("WHM token", token), ("part of the WHM token", token[:16]))
              if v.encode() in data]
    leaks += [f"{n} in stderr" for n, v in secrets.items() if v in g.stderr()]
    assert not leaks, "in the audit file: " + ", ".join(leaks)
    verify_ok(t, g.audit_path)


def test_audit_trail_reload_records(t):
    """6b. SIGHUP is recorded: a valid reload (result ok, the new digest)
    whose audit.redact applies to the next calls; refused reloads (not
    JSON, a changed audit.file, a WHM token or a client key pasted in clear
    text) say why without naming the secret, and the old config stays."""
    conf = t.conf()
    g = t.gate(conf)
    billing, token = t.key("billing"), t.session.token
    path = "/json-api/listaccts?api.version=1&search=cust1&contactemail=a%40example.com"

    def contactemail():
        r = call(g, path, billing)
        eq(r.status, 200, f"listaccts status {r.body[:120]!r}")
        return g.records(r.header("X-Request-Id"))[0]["whm"]["params"].get("contactemail")

    def reload(new):
        n = len(system(g.audit(), "reload"))
        with open(g.conf_path, "w") as f:
            f.write(new if isinstance(new, str) else json.dumps(new, indent=1))
        os.kill(g.pid, signal.SIGHUP)
        recs = g.wait_audit(lambda rs: len(system(rs, "reload")) > n, what="a reload record")
        return system(recs, "reload")[-1]

    eq(contactemail(), "a@example.com", "contactemail before the reload")
    start = system(g.audit(), "start")[0]
    conf2 = json.loads(json.dumps(conf))
    conf2["audit"]["redact"] = ["contactemail"]
    rec = reload(conf2)
    eq(rec.get("result"), "ok", f"reload record {rec}")
    assert rec.get("config_digest") and rec["config_digest"] != start["config_digest"], \
        f"reload config_digest {rec.get('config_digest')!r} (start {start['config_digest']!r})"
    eq(contactemail(), "[REDACTED]", "contactemail after a reload adding it to audit.redact")

    moved = json.loads(json.dumps(conf2))
    moved["audit"]["file"] = os.path.join(t.dir, "elsewhere.jsonl")
    pasted_token = json.loads(json.dumps(conf2))
    pasted_token["clients"]["billing"]["whm_token"] = token
    pasted_key = json.loads(json.dumps(conf2))
    pasted_key["clients"]["billing"]["keys"] = [billing]
    for what, new in (("not JSON", "{ this is not json"), ("a changed audit.file", moved),
                      ("a WHM token in clear text", pasted_token),
                      ("a client key in clear text", pasted_key)):
        rec = reload(new)
        eq(rec.get("result"), "refused", f"reload with {what}: {rec}")
        assert rec.get("reason"), f"reload with {what}: no reason in {rec}"
        if what == "a changed audit.file":
            assert "audit.file" in rec["reason"], f"reason {rec['reason']!r}"
        eq(contactemail(), "[REDACTED]", f"contactemail after the refused reload ({what})")
    eq(g.stop(), 0, "exit code")
    with open(g.audit_path, "rb") as f:
        data = f.read()
    for what, v in (("WHM token", token), ("billing key", billing)):
        assert v.encode() not in data, f"the {what} is in the audit file"
        assert v not in g.stderr(), f"the {what} is in stderr"
    verify_ok(t, g.audit_path)


# ---------------------------------------------------------------- 7. outcome

def test_audit_trail_outcome(t):
    """7. Response records carry WHM's outcome: result 0 on HTTP 200, with
    metadata first or last; per batch sub-call; uapi_cpanel's data.uapi.status;
    a body that is not JSON is relayed and recorded as such; a 100 MB answer
    is relayed whole, its result recorded, with bounded memory."""
    conf = t.conf(timeout_ms=120000)
    conf["clients"]["billing"]["allow"].update({"uapi_cpanel:Email::list_pops": {}})
    g = t.gate(conf)
    key = t.key("billing")

    def outcome(path, method="GET", body=None):
        r = call(g, path, key, method, body)
        eq(r.status, 200, f"status of {path} ({r.body[:160]!r})")
        _, resp = check_exactly_once_pair(g, r.header("X-Request-Id"))
        return r, resp["whm"]

    missing = "/json-api/accountsummary?api.version=1&user=nosuch"
    batch = batch_body("accountsummary?user=cust1", "accountsummary?user=nosuch", "listaccts")
    for first in (False, True):
        t.standin.behave(metadata_first=first)
        r, w = outcome(missing)
        eq((w.get("result"), w.get("reason")), (0, "Account does not exist."),
           f"accountsummary of a missing user (metadata first: {first})")
        r, w = outcome(LIST)
        eq(r.body.startswith(b'{"metadata"'), first, f"listaccts body starts {r.body[:30]!r}")
        eq((w.get("result"), w.get("reason")), (1, "OK"),
           f"listaccts result (metadata first: {first})")
        r, w = outcome("/json-api/batch", "POST", batch)
        eq(r.body.startswith(b'{"metadata"'), first, f"batch body starts {r.body[:30]!r}")
        eq([c.get("result") for c in w.get("calls", [])], [1, 0, 1],
           f"batch sub-call results (metadata first: {first})")
        eq(w.get("result"), 1, f"batch result (metadata first: {first})")
    t.standin.reset()

    r, w = outcome("/json-api/uapi_cpanel?api.version=1&cpanel.module=Email"
                   "&cpanel.function=list_pops&cpanel.user=cust1")
    eq(w.get("result"), 1, "uapi_cpanel result for cust1")
    r, w = outcome("/json-api/uapi_cpanel?api.version=1&cpanel.module=Email"
                   "&cpanel.function=list_pops&cpanel.user=cust3")
    eq(r.json()["metadata"]["result"], 1, "WHM's outer result of a failed UAPI call")
    eq(w.get("result"), 0, "uapi_cpanel result: data.uapi.status of a failed call")

    t.standin.behave(not_json=True)
    r, w = outcome(LIST)
    eq(r.body, b"<html>cPanel login</html>", "body relayed")
    eq((w.get("body"), w.get("result")), ("not JSON", None), "not JSON recorded")

    # 100 MB, read as fast as the client can.
    size = 100_000_000
    t.standin.reset()
    t.standin.behave(body_bytes=size)
    before = g.status()
    s = socket.create_connection(("127.0.0.1", g.port), timeout=60 * t.session.slow)
    got = {"n": 0, "tail": b""}

    def on_body(piece):
        got["n"] += len(piece)
        got["tail"] = (got["tail"] + piece[-256:])[-256:]
    t0 = time.monotonic()
    try:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                  % (LIST.encode(), key.encode()))
        r = read_response(s, on_body=on_body)
    finally:
        s.close()
    took = time.monotonic() - t0
    after = g.status()
    eq((r.status, got["n"]), (200, size), "status and bytes of the 100 MB answer")
    assert got["tail"].rstrip().endswith(b'"result":1,"version":1}}'), got["tail"][-60:]
    _, resp = check_exactly_once_pair(g, r.header("X-Request-Id"))
    eq((resp["whm"].get("result"), resp["upstream"]["bytes"], resp["http"]["status"]),
       (1, size, 200), "response record of the 100 MB answer")
    growth = (after["VmHWM"] - before["VmRSS"]) / 1024
    t.note(f"100 MB in {took:.1f} s, RSS {before['VmRSS'] / 1024:.1f} MB before, "
           f"peak {after['VmHWM'] / 1024:.1f} MB, growth {growth:.1f} MB")
    if not getattr(t.session, "instrumented", t.session.wrapper):
        assert growth < 16, f"whmgate's RSS grew by {growth:.1f} MB for a 100 MB answer"


def check_exactly_once_pair(g, rid):
    recs = g.records(rid)
    eq([r["type"] for r in recs], ["request", "response"], f"records of {rid}")
    return recs


# ---------------------------------------------------------------- 8. exactly once

def head_of(s, buf):
    while b"\r\n\r\n" not in buf:
        b = s.recv(65536)
        if not b:
            raise AssertionError(f"closed before the head: {bytes(buf[:200])!r}")
        buf += b
    i = buf.index(b"\r\n\r\n")
    status, hdrs = parse_head(bytes(buf[:i]))
    del buf[:i + 4]
    return status, dict((k.lower(), v) for k, v in hdrs)


def drain(s, timeout):
    """Bytes until EOF or reset; (count, how it ended)."""
    s.settimeout(timeout)
    n = 0
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return n, "eof"
            n += len(b)
    except ConnectionResetError:
        return n, "reset"
    except socket.timeout:
        return n, "open"


def request_bytes(key, path=LIST):
    return (b"GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
            % (path.encode(), key.encode()))


def test_audit_trail_exactly_once(t):
    """8. One request and one response record per forwarded call also when
    the client leaves mid-body or before the head (499, client_closed), WHM
    resets after the head (client cut, upstream error), WHM is too slow
    (504), or whmgate is stopped mid-call (record says so, stop record
    last, exit 0); refusals while draining are one deny."""
    key = t.key("billing")
    g = t.gate(t.conf(timeout_ms=1500))

    # The client reads a little of a big, slow body and leaves.
    t.standin.behave(body_bytes=5_000_000, drip_ms=20)
    s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
    buf = bytearray()
    s.sendall(request_bytes(key))
    status, hdrs = head_of(s, buf)
    eq(status, 200, "status before the client leaves")
    while len(buf) < 200_000:
        buf += s.recv(65536)
    s.close()
    _, resp = check_exactly_once_pair(g, hdrs["x-request-id"])
    eq((resp["http"]["status"], resp["upstream"]["error"]), (499, "client_closed"),
       "response record of a client that left mid-body")
    assert 0 < resp["upstream"]["bytes"] < 5_000_000, f"upstream bytes {resp['upstream']}"

    # The client leaves while WHM thinks.
    t.standin.reset()
    t.standin.behave(delay_ms=800)
    s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
    port = s.getsockname()[1]
    s.sendall(request_bytes(key, "/json-api/accountsummary?api.version=1&user=cust1"))
    wait_until(lambda: t.standin.requests(), 3, what="WHM to receive the call")
    s.close()
    recs = g.wait_audit(lambda rs: [r for r in rs if r.get("type") == "response"
                                    and r["client"]["port"] == port], timeout=3,
                        what="the response record of a client that left before the head")
    resp = recs[0]
    eq((resp["http"]["status"], resp["upstream"]["error"]), (499, "client_closed"),
       f"response record of a client that left before the head ({resp['upstream']})")

    # WHM resets after the head: the client connection is cut.
    t.standin.reset()
    t.standin.behave(reset_after_head=True)
    s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
    buf = bytearray()
    s.sendall(request_bytes(key))
    status, hdrs = head_of(s, buf)
    n, end = drain(s, 5)
    s.close()
    # WHM's head waits in whmgate for the first piece of body: a reset
    # before any body byte is answered 502; after one, the client's
    # connection is cut (SPEC section 5).
    assert status in (200, 502), f"status after a reset: {status}"
    if status == 200:
        assert end != "open", "the client connection stayed open after WHM reset"
        assert len(buf) + n < int(hdrs.get("content-length", 10 ** 9)) or \
            "transfer-encoding" in hdrs, "the client got a complete body though WHM reset"
    _, resp = check_exactly_once_pair(g, hdrs["x-request-id"])
    eq(resp["http"]["status"], status, "response http.status")
    assert resp["upstream"]["error"], f"no upstream.error after a reset: {resp['upstream']}"
    t.note(f"reset after head: http.status {resp['http']['status']}, "
           f"upstream.error {resp['upstream']['error']!r}, client saw {end}")

    # WHM slower than timeout_ms.
    t.standin.reset()
    t.standin.behave(delay_ms=2500)
    rid = check_error(call(g, LIST, key), 504, "upstream_timeout")
    _, resp = check_exactly_once_pair(g, rid)
    eq(resp["http"]["status"], 504, "response http.status after a timeout")
    assert resp["upstream"]["error"], "no upstream.error after a timeout"
    eq(g.stop(), 0, "exit code")
    check_exactly_once(records(g.audit_path))

    # SIGTERM while a slow call runs.
    t.standin.reset()
    conf = t.conf(timeout_ms=10000)
    conf["limits"] = {"shutdown_timeout_ms": 500}
    g = t.gate(conf)
    check_exactly_once_pair(g, call(g, LIST, key).header("X-Request-Id"))
    t.standin.behave(delay_ms=3000)
    slow = socket.create_connection(("127.0.0.1", g.port), timeout=10)
    slow_port = slow.getsockname()[1]
    slow.sendall(request_bytes(key))
    g.wait_audit(lambda rs: [r for r in rs if r.get("type") == "request"
                             and r["client"]["port"] == slow_port],
                 what="the slow call's request record")
    late = socket.create_connection(("127.0.0.1", g.port), timeout=10)
    late.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n" % LIST.encode())
    time.sleep(0.1)
    t0 = time.monotonic()
    os.kill(g.pid, signal.SIGTERM)
    time.sleep(0.1)
    late.sendall(b"Authorization: Bearer %s\r\n\r\n" % key.encode())
    r = read_response(late)
    late.close()
    late_rid = check_error(r, 503, "shutting_down")
    try:
        rc = g.proc.wait(timeout=5 * t.session.slow)
    except subprocess.TimeoutExpired:
        rc = None
    took = time.monotonic() - t0
    n, end = drain(slow, 2)
    slow.close()
    eq(g.stop(), 0, "exit code after SIGTERM with a call in flight")
    recs = records(g.audit_path)
    seen = check_exactly_once(recs)
    eq(seen.get(late_rid), ["deny"], "records of the call refused while draining")
    mine = [r for r in recs if r.get("type") in ("request", "response")
            and r["client"]["port"] == slow_port]
    eq([r["type"] for r in mine], ["request", "response"], "records of the call cut at shutdown")
    resp = mine[1]
    assert "shutdown" in (resp["upstream"]["error"] or ""), \
        f"the cut call's record does not say so: {resp['upstream']}"
    eq((recs[-1]["type"], recs[-1].get("event")), ("system", "stop"), "last record")
    assert rc == 0 and took < 2.5 * t.session.slow, f"exit {rc} after {took:.2f} s"
    t.note(f"cut at shutdown: http.status {resp['http']['status']}, "
           f"error {resp['upstream']['error']!r}, client saw {end} after {n} bytes; "
           f"exit {took:.2f} s after SIGTERM")


# ---------------------------------------------------------------- 9. PCI fields

def touched(recs, user):
    """The ids of the calls that acted on `user`: jq's
    select(.whm.target == U or any(.whm.calls[]?; .target == U or .user == U))."""
    out = set()
    for r in recs:
        w = r.get("whm") or {}
        if w.get("target") == user or any(c.get("target") == user or c.get("user") == user
                                           for c in w.get("calls") or []):
            out.add(r["id"])
    return out


def test_audit_trail_pci_fields(t):
    """9. Every request/response/deny record says who (client id, ip, port,
    auth), when (RFC 3339 UTC with microseconds), where (instance), what
    (method, path, function) and on what (whm.target); filtering the trail
    for one account finds exactly the calls on it."""
    conf = t.conf()
    conf["instance"] = "pci-gw-1"
    conf["clients"]["billing"]["allow"] = {
        "createacct": {}, "suspendacct": {}, "accountsummary": {}, "listaccts": {},
        "batch": {}, "uapi_cpanel:Email::list_pops": {}}
    g = t.gate(conf)
    billing, support = t.key("billing"), t.key("support")
    ports, on_cust1 = {}, set()

    def do(path, key=None, want=200, cust1=False, **kw):
        r = call(g, path, key, **kw)
        eq(r.status, want, f"status of {path} ({r.body[:160]!r})")
        rid = r.header("X-Request-Id")
        ports[rid] = r.port
        if cust1:
            on_cust1.add(rid)
        return rid
    created = do("/json-api/createacct?api.version=1&username=cust9&domain=cust9.example",
                 billing)
    suspended = do("/json-api/suspendacct?api.version=1&user=cust1&reason=unpaid", billing,
                   cust1=True)
    uapi = do("/json-api/uapi_cpanel?api.version=1&cpanel.module=Email"
              "&cpanel.function=list_pops&cpanel.user=cust1", billing, cust1=True)
    do("/json-api/accountsummary?api.version=1&user=cust1", support, 403, cust1=True)
    do("/json-api/accountsummary?api.version=1&user=cust2", billing)
    do(LIST, billing)
    do("/json-api/batch", billing, method="POST", cust1=True,
       body=batch_body("accountsummary?user=cust1"))
    do("/json-api/accountsummary", billing, method="POST", cust1=True,
       body="api.version=1&user=cust1", auth=f"whm billing:{billing}")
    anon = do("/json-api/accountsummary?api.version=1&user=cust1", "whmg_" + "C" * 43, 401)
    g.wait_audit(lambda rs: all(r in by_id(rs) and by_id(rs)[r][-1] != "request" for r in ports),
                 what="the final records of every call")
    eq(g.stop(), 0, "exit code")
    recs = records(g.audit_path)
    check_exactly_once(recs, ids=ports)

    last_ts = ""
    for r in recs:
        where = f"{r.get('type')} record {r.get('id') or r.get('event')}"
        assert TS_RE.fullmatch(r.get("ts", "")), f"{where}: ts {r.get('ts')!r}"
        assert r["ts"] >= last_ts, f"{where}: ts {r['ts']} before the line above ({last_ts})"
        last_ts = r["ts"]
        eq(r.get("instance"), "pci-gw-1", f"{where}: instance")
        if r["type"] == "system":
            continue
        c = r.get("client") or {}
        eq(sorted(c), ["auth", "id", "ip", "port"], f"{where}: client fields")
        eq((c["ip"], c["port"]), ("127.0.0.1", ports[r["id"]]), f"{where}: client ip and port")
        assert c["auth"] in ("bearer", "whm"), f"{where}: client.auth {c['auth']!r}"
        if r["id"] == anon:
            eq(c["id"], None, f"{where}: client.id of an unknown key")
        else:
            assert c["id"] in ("billing", "support"), f"{where}: client.id {c['id']!r}"
        h = r.get("http") or {}
        assert h.get("method") in ("GET", "POST") and h.get("path", "").startswith(
            "/json-api/") and "?" not in h["path"], f"{where}: http {h}"
        if r["type"] in ("response", "deny"):
            assert isinstance(h.get("status"), int), f"{where}: http.status {h}"
            assert isinstance(r.get("ms"), (int, float)), f"{where}: ms"
        w = r.get("whm") or {}
        assert w.get("function") == h["path"].rsplit("/", 1)[1], f"{where}: whm.function {w}"
        if r["id"] != anon:
            eq(w.get("user"), "root", f"{where}: whm.user")
            assert "target" in w, f"{where}: no whm.target"
        if r["type"] in ("request", "deny"):
            assert isinstance((r.get("decision") or {}).get("allow"), bool), f"{where}: decision"
        if r["type"] == "response":
            assert "status" in (r.get("upstream") or {}), f"{where}: upstream"
    targets = {r["id"]: r["whm"].get("target") for r in recs if r.get("type") == "request"}
    eq((targets[created], targets[suspended], targets[uapi]), ("cust9", "cust1", "cust1"),
       "whm.target of createacct, suspendacct and uapi_cpanel")
    eq(sorted(touched(recs, "cust1")), sorted(on_cust1), "ids of the calls that touched cust1")
    # The same with jq, as an operator would run it.
    jq = subprocess.run(["jq", "-r", 'select(.whm.target == "cust1" or any(.whm.calls[]?; '
                         '.target == "cust1" or .user == "cust1")) | .id', g.audit_path],
                        capture_output=True, text=True, timeout=30)
    if jq.returncode == 0:
        eq(sorted(set(jq.stdout.split())), sorted(on_cust1), "ids jq finds for cust1")


# ---------------------------------------------------------------- 10. syslog

def syslog_calls(g, key, password):
    """Allowed, refused and secret-carrying calls; returns their ids."""
    ids = []
    user = "sy" + os.urandom(3).hex()[:5]
    for path in (LIST, f"/json-api/listaccts?api.version=1&search={key}",
                 "/json-api/removeacct?api.version=1&user=cust1",
                 f"/json-api/createacct?api.version=1&username={user}"
                 f"&domain={user}.example&password={password}"):
        r = call(g, path, key)
        assert r.status in (200, 403), f"status {r.status} of {path[:50]}"
        ids.append(r.header("X-Request-Id"))
    return ids


def test_audit_trail_syslog(t):
    """10. With audit.syslog (tcp: octet-counted, unix: datagrams) to a real
    rsyslogd, every line of the file arrives as an RFC 5424 message whose
    JSON is that line, and no secret does; with the peer dead (killed, or
    nobody listening) calls still succeed and the file gets every record."""
    rs = Rsyslog(os.path.join(t.dir, "rsyslog"))
    key, token = t.key("billing"), t.session.token
    password = "Pw-" + os.urandom(6).hex()
    try:
        rs.start()
        gates = {}
        for kind, target in (("tcp", f"tcp:127.0.0.1:{rs.port}"), ("unix", f"unix:{rs.sock}")):
            conf = t.conf()
            conf["instance"] = f"sys-{kind}"
            conf["audit"]["syslog"] = target
            g = t.gate(conf)
            syslog_calls(g, key, password)
            eq(g.stop(), 0, f"exit code ({kind})")
            gates[kind] = g
        for kind, g in gates.items():
            lines = read_trail(g.audit_path)[0]

            def arrived():
                got = [m[3] for m in rs.messages() if m[2] == g.pid]
                return got if len(got) >= len(lines) else None
            try:
                got = wait_until(arrived, 5 * t.session.slow, what=f"the {kind} syslog copy")
            except AssertionError:
                got = [m[3] for m in rs.messages() if m[2] == g.pid]
            eq(sorted(got), sorted(lines), f"{kind}: JSON of the syslog messages vs the file")
            for ts, host, pid, _ in (m for m in rs.messages() if m[2] == g.pid):
                assert TS_RE.fullmatch(ts), f"{kind}: syslog timestamp {ts!r}"
                eq(host, f"sys-{kind}", f"{kind}: syslog HOSTNAME")
        raw = rs.raw()
        for what, v in (("password", password), ("billing key", key), ("WHM token", token)):
            assert v.encode() not in raw, f"the {what} is in the syslog output"

        # A unix stream socket: one newline-terminated message per line.
        sink = StreamSink(os.path.join(t.dir, "stream.sock"))
        try:
            conf = t.conf()
            conf["audit"]["syslog"] = f"unix:{sink.path}"
            g = t.gate(conf)
            syslog_calls(g, key, password)
            eq(g.stop(), 0, "exit code (unix stream)")
            lines = read_trail(g.audit_path)[0]
            wait_until(lambda: len(sink.messages()) >= len(lines), 5 * t.session.slow,
                       what="the stream syslog copy")
        finally:
            sink.close()
        eq(sorted(m[3] for m in sink.messages()), sorted(lines),
           "unix stream: JSON of the syslog messages vs the file")
        eq(bytes(sink.data).count(b"\n"), len(lines), "newlines on the unix stream")

        # A peer that dies while connected, and peers that are not there.
        conf = t.conf()
        conf["audit"]["syslog"] = f"tcp:127.0.0.1:{rs.port}"
        live = t.gate(conf)
        syslog_calls(live, key, password)
        rs.kill()
        dead = {"killed while connected": live}
        for name, target in (("dead tcp port", f"tcp:127.0.0.1:{rs.port}"),
                             ("dead unix socket", f"unix:{rs.sock}"),
                             ("nobody listening", f"tcp:127.0.0.1:{free_port()}")):
            conf = t.conf()
            conf["audit"]["syslog"] = target
            dead[name] = t.gate(conf)
        slowest = 0.0
        for _ in range(5):
            for name, g in dead.items():
                t0 = time.monotonic()
                syslog_calls(g, key, password)
                slowest = max(slowest, (time.monotonic() - t0) / 4)
        for name, g in dead.items():
            t0 = time.monotonic()
            eq(g.stop(), 0, f"exit code ({name})")
            stop_s = time.monotonic() - t0
            recs = records(g.audit_path)
            seen = check_exactly_once(recs)
            eq(len(seen), 20 + (4 if g is live else 0), f"calls recorded ({name})")
            eq(recs[-1].get("event"), "stop", f"last record ({name})")
            verify_ok(t, g.audit_path, what=f"verify ({name})")
            assert stop_s < 5 * t.session.slow, f"stop took {stop_s:.1f} s ({name})"
        t.note(f"dead peers: slowest call {slowest * 1000:.0f} ms")
    finally:
        rs.kill(signal.SIGTERM)
