"""Helpers for test_attacks.py: raw request builders and a table runner.

A Table runs rows against one whmgate:
- attack rows: the client gets `status` and `code` in WHM's envelope, a
  deny record with that status and code exists for the request id, and
  the WHM stand-in received nothing; with close=True the connection is
  closed after the answer and nothing else is answered on it (a well-formed
  request is appended to the attack, so a desynchronised parser would
  answer it, or forward it to WHM);
- twin rows: the same request made well-formed gets 200, reaches WHM
  once with exactly the expected parameters, and is audited as a request
  and a response.

Failures are collected per row, so one run names every failing row of a
class; finish() raises with the list.
"""
import socket
import time

from lib import (Response, check_deny, check_error, check_forwarded, eq, parse_head,
                 read_response, recv_until)

CRLF = b"\r\n"
GOOD = "/json-api/listaccts?api.version=1"


def b(x):
    return x if isinstance(x, bytes) else x.encode("latin-1")


class Table:
    # observer(table, name, raw, status, code): called for each row that
    # passed (twins with 200, None), so other suites can replay the rows
    # (test_policy_check.py asks `whmgate policy check` the same).
    observer = None

    def __init__(self, t, g, label):
        self.t = t
        self.g = g
        self.label = label
        self.host = b"127.0.0.1:%d" % g.port
        self.key = t.key("billing").encode()
        self.auth_line = b"Authorization: Bearer " + self.key + CRLF
        self.attacks = 0
        self.twins = 0
        self.failures = []
        self.last = None
        self.timeout = 4 * t.session.slow

    # ------------------------------------------------------------ builders

    def smuggled(self):
        """A well-formed, allowed request: if it is ever answered or
        reaches WHM, the bytes after a refusal were read as a request."""
        return (b"GET /json-api/listaccts?api.version=1&search=smuggled HTTP/1.1\r\n"
                b"Host: " + self.host + CRLF + self.auth_line + CRLF)

    def head(self, method="GET", target=GOOD, headers=(), version="HTTP/1.1",
             host=True, auth=True):
        """A request head. headers: raw lines (without CRLF) or (name, value)."""
        out = b(method) + b" " + b(target) + b" " + b(version) + CRLF
        if host:
            out += b"Host: " + self.host + CRLF
        if auth is True:
            out += self.auth_line
        elif auth:
            out += b"Authorization: " + b(auth) + CRLF
        for h in headers:
            if isinstance(h, tuple):
                out += b(h[0]) + b": " + b(h[1]) + CRLF
            else:
                out += b(h) + CRLF
        return out + CRLF

    def get(self, target=GOOD, headers=(), **kw):
        return self.head("GET", target, headers, **kw)

    def post(self, target, body, ctype="application/x-www-form-urlencoded",
             headers=(), **kw):
        hs = []
        if ctype is not None:
            hs.append(("Content-Type", ctype))
        hs.append(("Content-Length", str(len(b(body)))))
        return self.head("POST", target, hs + list(headers), **kw) + b(body)

    def chunked(self, target, chunks, ctype="application/x-www-form-urlencoded",
                headers=(), method="POST", **kw):
        """chunks: the raw chunked body (bytes), sent as is."""
        hs = [("Content-Type", ctype)] if ctype else []
        hs.append(("Transfer-Encoding", "chunked"))
        return self.head(method, target, hs + list(headers), **kw) + b(chunks)

    @staticmethod
    def chunks(*pieces, last=b"0\r\n\r\n"):
        out = b""
        for p in pieces:
            p = b(p)
            out += b"%x\r\n" % len(p) + p + CRLF
        return out + last

    # ------------------------------------------------------------ running

    def connect(self):
        try:
            s = socket.create_connection(("127.0.0.1", self.g.port), timeout=self.timeout)
        except ConnectionRefusedError:
            time.sleep(0.1)
            self._alive(f"the row before {self.last!r}")
            s = socket.create_connection(("127.0.0.1", self.g.port), timeout=self.timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def rest_until_eof(self, s, buf, wait):
        """Bytes the peer still sends before closing; raises if it does not
        close within `wait` seconds."""
        deadline = time.monotonic() + wait
        out = bytes(buf)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"connection not closed after the refusal "
                                     f"(extra bytes {out[:120]!r})")
            s.settimeout(left)
            try:
                d = s.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return out
            if not d:
                return out
            out += d

    def _alive(self, name):
        """A whmgate that died on a row is a failure of that row; a new one
        (same config, same port and audit file) takes over so the other
        rows still run."""
        rc = self.g.proc.poll()
        if rc is None:
            return
        self.fail(name, f"whmgate died (exit status {rc}) on this request")
        self.g = self.t.gate(self.g.conf)

    def fail(self, name, e):
        msg = f"{self.label}: {name}: {e}"
        print("    " + msg[:400], flush=True)
        self.failures.append(msg)

    def attack(self, name, raw, status, code, close=False, smuggle=None):
        """One hostile request. close: the answer must be followed by a
        close, and nothing after the refused request may be answered
        (smuggle defaults to close: a well-formed request is appended)."""
        self.attacks += 1
        self.last = name
        if smuggle is None:
            smuggle = close
        try:
            s = self.connect()
            try:
                s.sendall(raw + (self.smuggled() if smuggle else b""))
                buf = bytearray()
                r = read_response(s, buf)
                rid = check_error(r, status, code)
                if close:
                    rest = self.rest_until_eof(s, buf, 3 * self.t.session.slow)
                    eq(rest[:200], b"", "bytes after the refusal on a closed connection")
            finally:
                s.close()
            check_deny(self.g, rid, status, code)
            eq(self.t.standin.requests(), [], "requests WHM received")
            if Table.observer:
                Table.observer(self, name, raw, status, code)
            return r
        except (AssertionError, OSError) as e:
            time.sleep(0.05)
            self._alive(name)
            self.fail(name, f"{type(e).__name__}: {e}" if not isinstance(e, AssertionError)
                       else e)
            self.t.standin.reset()
            return None
        finally:
            self._alive(name)

    def read_head(self, s, buf):
        """Reads only a response head (for answers that have no body)."""
        recv_until(s, buf, b"\r\n\r\n")
        i = buf.index(b"\r\n\r\n")
        status, hdrs = parse_head(bytes(buf[:i]))
        del buf[:i + 4]
        return Response(status, hdrs, b"")

    def twin(self, name, raw, params, method="GET", function="listaccts", check=None):
        """The well-formed request: 200, WHM receives it once with exactly
        `params` (its decoded view, WHM-merged), request+response records."""
        self.twins += 1
        self.last = name
        try:
            s = self.connect()
            try:
                s.sendall(raw)
                r = read_response(s)
            finally:
                s.close()
            eq(r.status, 200, f"status ({r.body[:200]!r})")
            reqs = self.t.standin.requests()
            eq(len(reqs), 1, "requests WHM received")
            q = reqs[0]
            eq((q["method"], q["path"]), (method, f"/json-api/{function}"),
               "method and path WHM received")
            eq(q["params"], params, "parameters WHM received")
            check_forwarded(self.g, r.header("X-Request-Id"))
            if check:
                check(r, q)
            if Table.observer:
                Table.observer(self, name, raw, 200, None)
        except (AssertionError, OSError) as e:
            self.fail(f"twin {name}", e)
        finally:
            self.t.standin.reset()

    def count_check(self):
        """Every refusal left exactly one deny and nothing else: no extra
        request record (a smuggled request would add one)."""
        recs = self.g.audit()
        kinds = [r["type"] for r in recs if r["type"] != "system"]
        try:
            eq(kinds.count("request"), self.twins,
               "request records (one per twin, none for smuggled bytes)")
        except AssertionError as e:
            self.fail("audit totals", e)

    def finish(self):
        self.count_check()
        self.t.note(f"{self.attacks} attacks, {self.twins} twins")
        if self.failures:
            raise AssertionError(f"{len(self.failures)} of {self.attacks + self.twins} "
                                 f"cases failed: " + " || ".join(self.failures))
