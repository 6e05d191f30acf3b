"""Fixtures for whmgate's integration tests (standard library only).

A Session is made once per run: test certificates, a WHM token, client keys
(from `whmgate keygen`) and one shared WHM stand-in. Each test gets a Ctx:
its own temp dir, and whmgate instances started with ctx.gate(...), which
are stopped with SIGTERM at the end of the test (exit code 0 required).

Every process started here is registered in PROCS and killed by
kill_all(), which the runner calls from try/finally and atexit.
"""

import hashlib
import http.client
import shutil
import json
import os
import re
import select
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
STANDIN = os.path.join(ROOT, "tests", "whm_standin.py")

PROCS = []          # every Popen started by this module


def kill_all():
    """Stops every process still running: SIGTERM, then SIGKILL."""
    live = [p for p in PROCS if p.poll() is None]
    for p in live:
        try:
            p.send_signal(signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + 5
    for p in live:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                p.kill()
                p.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass


def spawn(cmd, **kw):
    """Popen in its own session (a Ctrl-C of the runner reaches only the
    runner, whose cleanup then stops the children in order)."""
    p = subprocess.Popen(cmd, start_new_session=True, **kw)
    PROCS.append(p)
    return p


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def tail(path, n=8):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []
    return lines[-n:]


def cpu_seconds(pid):
    """utime + stime of a process, all threads, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until(pred, timeout, step=0.02, what="condition"):
    """Polls pred() until it returns something truthy; returns that value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(step)


# ---------------------------------------------------------------- session

class Session:
    """What the whole run shares."""

    def __init__(self, binary, wrapper=None):
        binary = os.path.abspath(binary)
        if not os.access(binary, os.X_OK):
            raise RuntimeError(f"{binary} is not an executable (run make first)")
        self.wrapper = shlex.split(wrapper) if wrapper else []
        # An ASan/UBSan build (WHMGATE_SANITIZED=1): slower, and its RSS
        # includes ASan's quarantine, so memory bounds are not measured.
        self.sanitized = os.environ.get("WHMGATE_SANITIZED") == "1"
        self.instrumented = bool(self.wrapper) or self.sanitized
        self.slow = 8 if self.wrapper else 2 if self.sanitized else 1  # timeout factor
        self.dir = tempfile.mkdtemp(prefix="whmgate-it-")
        # A private copy: a rebuild during the run cannot swap the binary
        # under the tests (or make it unreadable while the linker writes).
        self.bin = os.path.join(self.dir, "whmgate")
        shutil.copy2(binary, self.bin)
        self.untrusted = None
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    def _setup(self):
        self.version = subprocess.run([self.bin, "-V"], capture_output=True,
                                      text=True, timeout=10).stdout.split()[1]
        self._certs()
        # A WHM API token: 32 characters of [0-9A-Z].
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        self.token = "".join(alphabet[b % 36] for b in os.urandom(32))
        self.tokens_file = os.path.join(self.dir, "standin_tokens")
        with open(self.tokens_file, "w") as f:
            f.write(f"root:{self.token}\n")
        self.keys = {}      # name -> (key, "sha256:...")
        for name in ("billing", "support", "remote", "old", "stranger"):
            self.keys[name] = self.keygen()
        self.standin = Standin(self, self.server_crt, self.server_key, self.ca_crt,
                               "standin")

    def _certs(self):
        d = self.dir
        self.ca_crt, self.ca_key = f"{d}/ca.crt", f"{d}/ca.key"
        self.server_crt, self.server_key = f"{d}/server.crt", f"{d}/server.key"
        self.self_crt, self.self_key = f"{d}/self.crt", f"{d}/self.key"

        def ossl(*args):
            r = subprocess.run(["openssl", *args], capture_output=True, text=True,
                               timeout=60)
            if r.returncode != 0:
                raise RuntimeError(f"openssl {args[0]}: {r.stderr.strip()[-300:]}")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        ossl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=whmgate test CA",
             "-keyout", self.ca_key, "-out", self.ca_crt)
        ossl("req", *ec, "-subj", "/CN=127.0.0.1", "-keyout", self.server_key,
             "-out", f"{d}/server.csr")
        with open(f"{d}/server.ext", "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                    "extendedKeyUsage=serverAuth\n")
        ossl("x509", "-req", "-in", f"{d}/server.csr", "-CA", self.ca_crt,
             "-CAkey", self.ca_key, "-CAcreateserial", "-days", "2",
             "-extfile", f"{d}/server.ext", "-out", self.server_crt)
        # Right names, but signed by nobody whmgate trusts.
        ossl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
             "-keyout", self.self_key, "-out", self.self_crt)

    def keygen(self):
        r = subprocess.run([self.bin, "keygen"], capture_output=True, text=True,
                           timeout=10)
        lines = r.stdout.splitlines()
        if (r.returncode != 0 or len(lines) != 2
                or not re.fullmatch(r"whmg_[A-Za-z0-9_-]{43}", lines[0])
                or not re.fullmatch(r"sha256:[0-9a-f]{64}", lines[1])):
            raise RuntimeError(f"whmgate keygen printed {r.stdout!r}")
        if "sha256:" + hashlib.sha256(lines[0].encode()).hexdigest() != lines[1]:
            raise RuntimeError("whmgate keygen: the sha256 line is not the key's hash")
        return lines[0], lines[1]

    def key(self, name):
        return self.keys[name][0]

    def untrusted_standin(self):
        """A second stand-in whose certificate whmgate does not trust."""
        if self.untrusted is None:
            self.untrusted = Standin(self, self.self_crt, self.self_key, self.self_crt,
                                     "untrusted")
        return self.untrusted

    def close(self):
        for s in (getattr(self, "standin", None), getattr(self, "untrusted", None)):
            if s:
                s.stop()
        kill_all()
        if not os.environ.get("WHMGATE_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- stand-in

class Standin:
    """One tests/whm_standin.py process, plus its /__test control API."""

    def __init__(self, session, cert, key, trust, name):
        self.name = name
        self.err = os.path.join(session.dir, f"{name}.err")
        self.trust = trust
        with open(self.err, "wb") as errf:
            self.proc = spawn([sys.executable, STANDIN, "--listen", "127.0.0.1:0",
                               "--cert", cert, "--key", key,
                               "--token-file", session.tokens_file],
                              stdout=subprocess.PIPE, stderr=errf)
        line = b""
        deadline = time.monotonic() + 20
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise RuntimeError(f"{name} stand-in did not start: "
                                   + " | ".join(tail(self.err, 3)))
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                b = os.read(self.proc.stdout.fileno(), 1)
                if not b:
                    continue
                line += b
        m = re.search(rb"listening on 127\.0\.0\.1:(\d+)", line)
        if not m:
            raise RuntimeError(f"{name} stand-in printed {line!r}")
        self.port = int(m.group(1))
        self.url = f"https://127.0.0.1:{self.port}"
        self.ctx = ssl.create_default_context(cafile=trust)

    def control(self, method, path, body=None):
        c = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx,
                                        timeout=30)
        try:
            data = json.dumps(body).encode() if body is not None else None
            c.request(method, path, body=data,
                      headers={"Content-Type": "application/json"} if data else {})
            r = c.getresponse()
            out = r.read()
            if r.status != 200:
                raise AssertionError(f"stand-in {method} {path}: {r.status} {out[:200]!r}")
            return json.loads(out)
        finally:
            c.close()

    def reset(self):
        self.control("POST", "/__test/reset")

    def behave(self, **kw):
        self.control("POST", "/__test/behave", kw)

    def requests(self):
        """Recorded /json-api requests, oldest first."""
        return self.control("GET", "/__test/requests")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc.stdout:
            self.proc.stdout.close()


def header(rec, name):
    """Values of one header in a stand-in record (case-insensitive)."""
    return [v for k, v in rec["headers"] if k.lower() == name.lower()]


# ---------------------------------------------------------------- whmgate

class Gate:
    """One running whmgate."""

    def __init__(self, ctx, conf, name, env=None):
        self.ctx = ctx
        self.session = s = ctx.session
        self.name = name
        self.dir = ctx.dir
        self.conf = conf
        self.conf_path = os.path.join(self.dir, f"{name}.json")
        with open(self.conf_path, "w") as f:
            json.dump(conf, f, indent=1)
        self.port = int(conf["listen"][0].rsplit(":", 1)[1])
        self.audit_path = conf["audit"]["file"]
        self.err = os.path.join(self.dir, f"{name}.stderr")
        self.rc = None
        with open(self.err, "wb") as errf:
            self.proc = spawn([*s.wrapper, s.bin, "-c", self.conf_path],
                              stdin=subprocess.DEVNULL, stdout=errf, stderr=errf,
                              cwd=self.dir, env=dict(os.environ, **(env or {})))
        self.pid = self.proc.pid

    def wait_ready(self):
        """Returns once the listen port accepts a connection."""
        deadline = time.monotonic() + 10 * self.session.slow
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"whmgate exited with {self.proc.returncode} "
                                     "at start-up")
            try:
                # A bare connect: no HTTP request, so no audit record.
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("whmgate did not start listening")
                time.sleep(0.02)

    # -- lifecycle

    def stop(self):
        """SIGTERM; returns the exit code (None if it had to be killed)."""
        if self.rc is not None or self.proc.returncode is not None:
            self.rc = self.proc.returncode
            return self.rc
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.rc = self.proc.wait(timeout=15 * self.session.slow)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.rc = None
        return self.rc

    def stderr(self):
        with open(self.err, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def status(self):
        """VmRSS and VmHWM in KiB from /proc/PID/status."""
        out = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    out[k] = int(v.split()[0])
        return out

    # -- audit

    def audit(self):
        """Every complete line of the audit file, parsed."""
        try:
            with open(self.audit_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        recs = []
        for i, line in enumerate(data.split(b"\n")[:-1], 1):
            try:
                recs.append(json.loads(line))
            except ValueError as e:
                raise AssertionError(f"audit line {i} is not JSON ({e}): {line[:120]!r}")
        return recs

    def wait_audit(self, pred, timeout=2.0, what="audit records"):
        """Polls the audit file until pred(records) is truthy; returns that
        value (the records when it is True)."""
        last = []

        def probe():
            last[:] = self.audit()
            return pred(last)
        try:
            v = wait_until(probe, timeout * self.session.slow, what=what)
            return list(last) if v is True else v
        except AssertionError:
            raise AssertionError(f"timed out waiting for {what}; audit has "
                                 f"{[(r.get('type'), r.get('id')) for r in last][-6:]}")

    def records(self, rid, timeout=2.0):
        """The records of one request id once it is finished (a deny, or a
        request and a response)."""
        def done(recs):
            mine = [r for r in recs if r.get("id") == rid]
            types = [r["type"] for r in mine]
            if "deny" in types or "response" in types:
                return mine
            return None
        return self.wait_audit(done, timeout, what=f"the records of {rid}")

    # -- clients

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def curl(self, path, *args, auth=None, timeout=30):
        cmd = ["curl", "-sS", "-i", "--max-time", str(timeout * self.session.slow)]
        if auth:
            cmd += ["-H", f"Authorization: {auth}"]
        cmd += [*args, self.url(path)]
        r = subprocess.run(cmd, capture_output=True, timeout=timeout * self.session.slow + 10)
        if r.returncode != 0:
            raise AssertionError(f"curl exited {r.returncode}: "
                                 f"{r.stderr.decode('utf-8', 'replace').strip()}")
        return parse_response(r.stdout)

    def http(self, method, path, body=None, headers=None, timeout=30):
        """One request on a new http.client connection."""
        c = http.client.HTTPConnection("127.0.0.1", self.port,
                                       timeout=timeout * self.session.slow)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return Response(r.status, r.getheaders(), r.read())
        finally:
            c.close()

    def raw(self, data, timeout=10, wait_close=0):
        """Sends bytes on a new connection and reads one response. With
        wait_close > 0, resp.closed says whether whmgate closed the
        connection within that many seconds."""
        s = socket.create_connection(("127.0.0.1", self.port),
                                     timeout=timeout * self.session.slow)
        try:
            s.sendall(data)
            resp = read_response(s)
            if wait_close:
                resp.closed = peer_closed(s, wait_close * self.session.slow)
            return resp
        finally:
            s.close()


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers          # [(name, value), ...] as received
        self.body = body
        self.closed = None

    def header(self, name):
        vals = [v for k, v in self.headers if k.lower() == name.lower()]
        return vals[0] if vals else None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            raise AssertionError(f"body is not JSON: {self.body[:200]!r}")

    def __repr__(self):
        return f"<{self.status} {self.body[:160]!r}>"


def parse_head(head):
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
    if not m:
        raise AssertionError(f"bad status line {lines[0]!r}")
    hdrs = []
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            hdrs.append((k.strip(), v.strip()))
    return int(m.group(1)), hdrs


def parse_response(data):
    """A full response as curl -i printed it (1xx heads skipped)."""
    while True:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            raise AssertionError(f"no response head in {data[:200]!r}")
        status, hdrs = parse_head(head)
        if 100 <= status < 200:
            data = rest
            continue
        return Response(status, hdrs, rest)


def recv_until(s, buf, marker):
    while marker not in buf:
        b = s.recv(65536)
        if not b:
            raise AssertionError(f"connection closed before {marker!r}; got {bytes(buf[:200])!r}")
        buf += b
    return buf


def read_response(s, buf=None, on_body=None):
    """Reads one HTTP/1.1 response from socket s. Bytes after it stay in
    buf (a bytearray). on_body(n) is called per piece when given, and the
    body is then not kept."""
    buf = bytearray() if buf is None else buf
    recv_until(s, buf, b"\r\n\r\n")
    i = buf.index(b"\r\n\r\n")
    status, hdrs = parse_head(bytes(buf[:i]))
    del buf[:i + 4]
    resp = Response(status, hdrs, b"")
    body = bytearray()

    def take(n):
        while len(buf) < n:
            b = s.recv(65536)
            if not b:
                raise AssertionError(f"connection closed mid-body ({len(body) + len(buf)} bytes)")
            buf.extend(b)
        piece = bytes(buf[:n])
        del buf[:n]
        if on_body:
            on_body(piece)
        else:
            body.extend(piece)
    te = resp.header("Transfer-Encoding")
    cl = resp.header("Content-Length")
    if te and te.lower() == "chunked":
        while True:
            recv_until(s, buf, b"\r\n")
            j = buf.index(b"\r\n")
            size = int(bytes(buf[:j]).split(b";")[0], 16)
            del buf[:j + 2]
            if size == 0:
                recv_until(s, buf, b"\r\n")
                del buf[:buf.index(b"\r\n") + 2]
                break
            take(size)
            recv_until(s, buf, b"\r\n")
            del buf[:2]
    elif cl is not None:
        take(int(cl))
    else:
        while True:
            if buf:
                piece = bytes(buf)
                buf.clear()
                if on_body:
                    on_body(piece)
                else:
                    body.extend(piece)
            b = s.recv(65536)
            if not b:
                break
            buf.extend(b)
    resp.body = bytes(body)
    return resp


def read_while_trickling(s, gap=0.2):
    """Sends one body byte every `gap` seconds on s (each pause shorter than
    the idle timeout) until whmgate answers; returns that answer."""
    import threading
    stop = threading.Event()

    def trickle():
        while not stop.is_set():
            try:
                s.send(b"a")
            except OSError:
                return
            time.sleep(gap)
    th = threading.Thread(target=trickle)
    th.start()
    try:
        return read_response(s)
    finally:
        stop.set()
        th.join()


def peer_closed(s, wait):
    """True if the peer closed (EOF or reset) within `wait` seconds."""
    s.settimeout(wait)
    try:
        return s.recv(1) == b""
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True


# ---------------------------------------------------------------- per test

class Ctx:
    """What one test works with; closed by the runner after the test."""

    def __init__(self, session, name):
        self.session = session
        self.name = name
        self.dir = os.path.join(session.dir, name)
        os.makedirs(self.dir)
        self.gates = []
        self.notes = []
        self.token_file = os.path.join(self.dir, "whm_token")
        fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(session.token)

    @property
    def standin(self):
        return self.session.standin

    def key(self, name):
        return self.session.key(name)

    def note(self, text):
        """Extra words for this test's `ok` line."""
        self.notes.append(text)

    def client(self, name, allow=None, **extra):
        c = {"keys": [self.session.keys[name][1]], "whm_user": "root",
             "whm_token": {"file": self.token_file},
             "allow": allow if allow is not None else {"listaccts": {}}}
        c.update(extra)
        return c

    def conf(self, upstream_url=None, **upstream):
        """The default config: billing (lists, creates, batch, looks up
        accounts) and support (lists only)."""
        up = {"url": upstream_url or self.standin.url, "ca_file": self.session.ca_crt,
              "connect_timeout_ms": 2000, "timeout_ms": 5000}
        up.update(upstream)
        return {
            "listen": [f"127.0.0.1:{free_port()}"],
            "instance": "test",
            "upstream": up,
            "audit": {"file": os.path.join(self.dir, f"audit{len(self.gates)}.jsonl"),
                      "fsync": "always"},
            "clients": {
                "billing": self.client("billing", {
                    "listaccts": {},
                    "accountsummary": {},
                    "createacct": {"username": {"pattern": "^[a-z][a-z0-9]{0,7}$",
                                                "required": True}},
                    "batch": {}}),
                "support": self.client("support", {"listaccts": {}}),
            },
        }

    def gate(self, conf=None, env=None):
        """Starts whmgate with conf (default: self.conf()) and extra
        environment variables."""
        conf = conf or self.conf()
        g = Gate(self, conf, f"gate{len(self.gates)}", env)
        self.gates.append(g)        # stopped (and its stderr shown) even if it fails to start
        g.wait_ready()
        return g

    def run_bin(self, *args, timeout=60):
        """Runs a one-shot whmgate command (under the wrapper if set)."""
        s = self.session
        return subprocess.run([*s.wrapper, s.bin, *args], capture_output=True,
                              text=True, errors="replace", cwd=self.dir,
                              timeout=timeout * s.slow)

    def close(self):
        """Stops every whmgate of this test; returns a list of problems."""
        problems = []
        for g in self.gates:
            rc = g.stop()
            if rc is None:
                problems.append(f"{g.name} did not exit after SIGTERM (killed)")
            elif rc != 0:
                problems.append(f"{g.name} exited {rc} after SIGTERM"
                                + (" (valgrind errors)" if rc == 99 and self.session.wrapper
                                   else ""))
        return problems

    def stderr_tail(self, n=8):
        """The last lines of each whmgate's stderr; under a wrapper, its
        own lines are kept apart from valgrind's, of which only the error
        and leak summaries are shown."""
        out = []
        for g in self.gates:
            lines = tail(g.err, 4000)
            if self.session.wrapper:
                vg = [l for l in lines if re.match(r"==\d+== +(ERROR SUMMARY|definitely|"
                                                   r"Invalid|Conditional|Syscall)", l)]
                lines = [l for l in lines if not re.match(r"==\d+==", l)][-n:] + vg[-n:]
            else:
                lines = lines[-n:]
            if lines:
                out.append(f"[{g.name} stderr]")
                out += lines
        return out


# ---------------------------------------------------------------- assertions

def eq(got, want, what):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def check_error(resp, status, code):
    """A whmgate refusal: status, WHM's API 1 envelope with result 0, the
    whmgate.error code and a request id equal to the X-Request-Id header.
    Returns the request id."""
    eq(resp.status, status, f"status ({resp.body[:200]!r})")
    body = resp.json()
    meta = body.get("metadata") or {}
    eq(meta.get("result"), 0, "metadata.result")
    eq(meta.get("version"), 1, "metadata.version")
    if not isinstance(meta.get("reason"), str) or not meta["reason"]:
        raise AssertionError(f"metadata.reason missing: {body}")
    wg = body.get("whmgate") or {}
    eq(wg.get("error"), code, "whmgate.error")
    rid = resp.header("X-Request-Id")
    if not rid:
        raise AssertionError("no X-Request-Id header")
    eq(wg.get("request_id"), rid, "whmgate.request_id vs X-Request-Id")
    return rid


def check_deny(gate, rid, status, code):
    """Exactly one deny record for rid, no request/response; returns it."""
    recs = gate.records(rid)
    eq([r["type"] for r in recs], ["deny"], f"record types of {rid}")
    d = recs[0]
    eq(d["http"].get("status"), status, "deny http.status")
    eq(d["decision"]["allow"], False, "deny decision.allow")
    eq(d["decision"]["code"], code, "deny decision.code")
    return d


def check_forwarded(gate, rid):
    """A request then a response record for rid; returns (req, resp)."""
    recs = gate.records(rid)
    eq([r["type"] for r in recs], ["request", "response"], f"record types of {rid}")
    return recs[0], recs[1]
