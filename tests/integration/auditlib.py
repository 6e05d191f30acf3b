"""Helpers for test_audit_trail.py: reading and checking audit trails
independently of whmgate, calls that report what the client saw, a small
load generator, and an rsyslogd the test controls (SPEC section 7)."""

import hashlib
import hmac
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

from lib import Gate, Response, eq, free_port, spawn, tail, wait_until

ZEROS = "0" * 64
TS_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


# ---------------------------------------------------------------- reading

def read_trail(path):
    """(complete lines without their newline, torn tail bytes or b"")."""
    with open(path, "rb") as f:
        data = f.read()
    parts = data.split(b"\n")
    return parts[:-1], parts[-1]


def parse(lines):
    out = []
    for i, line in enumerate(lines, 1):
        try:
            out.append(json.loads(line))
        except ValueError as e:
            raise AssertionError(f"audit line {i} is not JSON ({e}): {line[:120]!r}")
    return out


def records(path):
    return parse(read_trail(path)[0])


def line_hash(line, key=None):
    if key is None:
        return hashlib.sha256(line).hexdigest()
    return hmac.new(key, line, hashlib.sha256).hexdigest()


def check_chain(lines, key=None, prev=ZEROS, seq0=0, what="trail"):
    """The chain as SPEC section 7 defines it, checked without whmgate:
    seq counts on from seq0, each prev is the hash of the line before
    (prev is the first line's). seq and prev are the last two fields."""
    for i, line in enumerate(lines, 1):
        rec = json.loads(line)
        eq(rec.get("seq"), seq0 + i, f"{what} line {i} seq")
        eq(rec.get("prev"), prev, f"{what} line {i} prev")
        eq(list(rec)[-2:], ["seq", "prev"], f"{what} line {i}: the last two fields")
        prev = line_hash(line, key)
    return prev


def verify(t, *files, key=None):
    """`whmgate audit verify FILE... [--key KEYFILE]` -> (exit code, output)."""
    args = ["audit", "verify", *files] + (["--key", key] if key else [])
    r = t.run_bin(*args)
    return r.returncode, r.stdout + r.stderr


def verify_ok(t, *files, key=None, what="verify"):
    rc, out = verify(t, *files, key=key)
    eq(rc, 0, f"{what}: exit code ({out.strip()[-300:]!r})")
    assert out.startswith("OK"), f"{what}: output {out!r}"
    return out


def broken_at(t, path, *files, key=None, what="tampered trail"):
    """Runs verify on files (default: path), which must fail; returns the
    line of `path` it names."""
    rc, out = verify(t, *(files or (path,)), key=key)
    eq(rc, 1, f"verify exit code for {what} ({out.strip()[-200:]!r})")
    m = re.search(r"BROKEN: " + re.escape(path) + r":(\d+): ", out)
    assert m, f"verify of {what} named no line of {path}: {out.strip()[-200:]!r}"
    return int(m.group(1))


def last_hash_of(out):
    m = re.search(r"\b([0-9a-f]{64})\b", out)
    return m.group(1) if m else None


# ---------------------------------------------------------------- records

def by_id(recs):
    """id -> [record types] in file order (system records have no id)."""
    out = {}
    for r in recs:
        if r.get("type") in ("request", "response", "deny"):
            out.setdefault(r.get("id"), []).append(r["type"])
    return out


def check_exactly_once(recs, ids=None, complete=True):
    """Every id ends with exactly one deny, or one request then one
    response. With complete=False an id may still lack its response
    (whmgate was killed). ids: these must all be present too."""
    seen = by_id(recs)
    bad = {}
    for rid, types in seen.items():
        if types in (["deny"], ["request", "response"]):
            continue
        if not complete and types == ["request"]:
            continue
        bad[rid] = types
    assert not bad, f"ids without exactly one deny or request+response: {list(bad.items())[:6]}"
    for rid in ids or ():
        assert rid in seen, f"no record of {rid}"
    return seen


def finals(recs):
    return sum(1 for r in recs if r.get("type") in ("deny", "response"))


def system(recs, event):
    return [r for r in recs if r.get("type") == "system" and r.get("event") == event]


# ---------------------------------------------------------------- calls

def call(g, path, key=None, method="GET", body=None, auth=None, timeout=30):
    """One request on its own connection: a lib.Response whose .port is
    the client's local port (what the audit's client.port must say)."""
    c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=timeout * g.session.slow)
    hdrs = {}
    if auth:
        hdrs["Authorization"] = auth
    elif key:
        hdrs["Authorization"] = f"Bearer {key}"
    if body is not None:
        hdrs["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        c.connect()
        port = c.sock.getsockname()[1]
        c.request(method, path, body=body, headers=hdrs)
        r = c.getresponse()
        resp = Response(r.status, r.getheaders(), r.read())
        resp.port = port
        return resp
    finally:
        c.close()


def admin_get(port, path, timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def start_gate(t, conf, settle=1.5):
    """Starts whmgate and returns (gate, None) once it listens, or
    (gate, exit code) if it exited at start-up."""
    g = Gate(t, conf, f"gate{len(t.gates)}")
    t.gates.append(g)
    deadline = time.monotonic() + 10 * t.session.slow
    while time.monotonic() < deadline:
        if g.proc.poll() is not None:
            return g, g.proc.returncode
        try:
            socket.create_connection(("127.0.0.1", g.port), timeout=1).close()
            return g, None
        except OSError:
            time.sleep(0.02)
    raise AssertionError("whmgate neither listened nor exited")


def kill9(t, g):
    """SIGKILL; the gate is taken off the fixture's list (which wants exit 0)."""
    g.proc.kill()
    g.proc.wait(timeout=10)
    t.gates.remove(g)


# ---------------------------------------------------------------- load

class Load:
    """Client threads making mixed calls on keep-alive connections until
    stopped. Each answer is kept as (request id, status, monotonic time)."""

    def __init__(self, g, plan, threads=8):
        self.g, self.plan = g, plan
        self.stop_ev = threading.Event()
        self.answers = []
        self.errors = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(threads)]

    def start(self):
        for th in self.threads:
            th.start()

    def stop(self):
        self.stop_ev.set()
        for th in self.threads:
            th.join(timeout=30)

    def run(self, tid):
        conn = None
        i = 0
        while not self.stop_ev.is_set():
            method, path, body, hdrs, want = self.plan(tid, i)
            i += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.g.port, timeout=10)
                conn.request(method, path, body=body, headers=hdrs)
                r = conn.getresponse()
                r.read()
                rid = r.getheader("X-Request-Id")
                with self.lock:
                    self.answers.append((rid, r.status, time.monotonic(), want))
                if r.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                with self.lock:
                    self.errors += 1
                if conn:
                    conn.close()
                conn = None
                if self.stop_ev.wait(0.01):
                    break
        if conn:
            conn.close()


# ---------------------------------------------------------------- rsyslogd

SYSLOG_RE = re.compile(rb"<86>1 (\S+) (\S+) whmgate (\d+) audit - (.*)")


class Rsyslog:
    """An rsyslogd with a TCP input (octet-counted framing accepted) and a
    unix datagram socket, writing each message's raw bytes to out.log."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.port = free_port()
        self.sock = os.path.join(directory, "log.sock")
        self.out = os.path.join(directory, "out.log")
        self.conf = os.path.join(directory, "rsyslog.conf")
        self.err = os.path.join(directory, "rsyslogd.err")
        self.proc = None
        with open(self.conf, "w") as f:
            f.write(f'global(workDirectory="{directory}" maxMessageSize="64k")\n'
                    'module(load="imtcp")\n'
                    f'input(type="imtcp" address="127.0.0.1" port="{self.port}")\n'
                    'module(load="imuxsock" SysSock.Use="off")\n'
                    f'input(type="imuxsock" Socket="{self.sock}" RateLimit.Interval="0")\n'
                    'template(name="raw" type="string" string="%rawmsg%\\n")\n'
                    f'action(type="omfile" file="{self.out}" template="raw")\n')

    def start(self):
        with open(self.err, "ab") as errf:
            self.proc = spawn(["rsyslogd", "-n", "-f", self.conf,
                               "-i", os.path.join(self.dir, "rsyslogd.pid")],
                              stdin=subprocess.DEVNULL, stdout=errf, stderr=errf)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("rsyslogd exited: " + " | ".join(tail(self.err, 3)))
            if not os.path.exists(self.sock):
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False
        wait_until(up, 10, what="rsyslogd to listen")

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)

    def messages(self):
        """[(timestamp, host, pid, json bytes)] of the whmgate messages."""
        try:
            with open(self.out, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        out = []
        for line in data.split(b"\n"):
            m = SYSLOG_RE.fullmatch(line)
            if m:
                out.append((m.group(1).decode(), m.group(2).decode(), int(m.group(3)),
                            m.group(4)))
        return out

    def raw(self):
        try:
            with open(self.out, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""


class StreamSink:
    """A unix stream socket that keeps every byte whmgate sends to it."""

    def __init__(self, path):
        self.path = path
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(8)
        self.srv.settimeout(0.2)
        self.data = bytearray()
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        conns = []
        while not self.stop_ev.is_set():
            try:
                c, _ = self.srv.accept()
                c.settimeout(0.05)
                conns.append(c)
            except socket.timeout:
                pass
            for c in list(conns):
                try:
                    b = c.recv(65536)
                    if b:
                        self.data += b
                    else:
                        conns.remove(c)
                        c.close()
                except socket.timeout:
                    pass
        for c in conns:
            c.close()

    def close(self):
        self.stop_ev.set()
        self.thread.join(timeout=5)
        self.srv.close()

    def messages(self):
        out = []
        for line in bytes(self.data).split(b"\n"):
            m = SYSLOG_RE.fullmatch(line)
            if m:
                out.append((m.group(1).decode(), m.group(2).decode(), int(m.group(3)),
                            m.group(4)))
        return out
