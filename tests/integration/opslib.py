"""Helpers for test_ops.py: config rewrites and SIGHUP, the admin listener
and Prometheus text, a raw keep-alive client that tells a clean refusal
from a broken answer, and openssl certificates (standard library only)."""

import hashlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time

from lib import eq, free_port, parse_head, read_response, spawn, wait_until

# ---------------------------------------------------------------- config and reload


def write_conf(path, conf):
    """Replaces the config file atomically (a reload never reads half a file)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(conf, f, indent=1)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def write_secret(path, text, mode=0o600):
    """Writes a secret file atomically with the given mode."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def reload_records(recs):
    return [r for r in recs if r.get("type") == "system" and r.get("event") == "reload"]


def ensure_serving(g):
    """The listen port accepts before the signal handlers are installed:
    one answered request (a 404, no call to WHM) shows the loop runs."""
    if not getattr(g, "_ops_serving", False):
        r = g.http("GET", "/ops-probe")
        eq(r.status, 404, "status of the start-up probe")
        g._ops_serving = True


def sighup(g, conf=None, timeout=10.0):
    """Writes conf (when given) to the gate's config file, sends SIGHUP and
    returns the reload record it produced."""
    ensure_serving(g)
    before = len(reload_records(g.audit()))
    if conf is not None:
        write_conf(g.conf_path, conf)
    g.proc.send_signal(signal.SIGHUP)
    recs = g.wait_audit(lambda rs: len(reload_records(rs)) > before, timeout,
                        what=f"reload record #{before + 1}")
    got = reload_records(recs)
    eq(len(got), before + 1, "reload records after one SIGHUP")
    return got[-1]


def admin_conf(conf):
    conf["admin"] = f"127.0.0.1:{free_port()}"
    return conf


# ---------------------------------------------------------------- admin / metrics


def admin_get(conf, path, timeout=10):
    """GET on the admin listener; (status, body, content type). The admin
    port is bound after the main listeners: a refused connection is
    retried for a few seconds."""
    host, port = conf["admin"].rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while True:
        c = http.client.HTTPConnection(host, int(port), timeout=timeout)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read().decode("utf-8", "replace"), r.getheader("Content-Type")
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        finally:
            c.close()


SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: -?\d+)?')
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def parse_metrics(text):
    """Prometheus text format -> {(name, ((label, value), ...)): float}.
    Raises AssertionError on a line that is not a comment or a sample."""
    out = {}
    for n, line in enumerate(text.split("\n"), 1):
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.fullmatch(line)
        if not m:
            raise AssertionError(f"metrics line {n} is not a sample: {line!r}")
        name, labels_s, value = m.groups()
        labels = []
        if labels_s:
            pos = 0
            while pos < len(labels_s):
                lm = LABEL.match(labels_s, pos)
                if not lm or lm.end() == pos:
                    raise AssertionError(f"metrics line {n}: bad labels {labels_s!r}")
                labels.append((lm.group(1), lm.group(2)))
                pos = lm.end()
        try:
            v = float(value)
        except ValueError:
            raise AssertionError(f"metrics line {n}: value {value!r} is not a number")
        key = (name, tuple(sorted(labels)))
        if key in out:
            raise AssertionError(f"metrics line {n}: duplicate sample {line!r}")
        out[key] = v
    return out


def scrape(conf):
    status, text, _ = admin_get(conf, "/metrics")
    eq(status, 200, "status of /metrics")
    return parse_metrics(text), text


def mval(m, name, **labels):
    """One sample's value; 0 when absent."""
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


def msum(m, name):
    """The sum of a metric's samples over all their labels."""
    return sum(v for k, v in m.items() if k[0] == name)


def samples(m, name):
    """[(labels dict, value)] for one metric name."""
    return [(dict(k[1]), v) for k, v in m.items() if k[0] == name]


# ---------------------------------------------------------------- raw client

class Outcome:
    """What one call got. kind: ok (a full response), refused (connect
    refused), closed (closed or reset before any byte of a response),
    partial (some bytes, then the connection went away), error."""

    def __init__(self, kind, resp=None, detail="", got=b""):
        self.kind, self.resp, self.detail, self.got = kind, resp, detail, got
        self.reused = False     # sent on a kept-alive connection

    def __repr__(self):
        how = "kept-alive" if self.reused else "new"
        if self.resp is not None:
            return f"<{self.kind} on a {how} connection: {self.resp.status} " \
                   f"{self.resp.body[:100]!r}>"
        return f"<{self.kind} on a {how} connection: {self.detail} {self.got[:100]!r}>"


class RawClient:
    """HTTP/1.1 over a socket, keep-alive when asked, reconnecting when the
    server closed the connection."""

    def __init__(self, port, keepalive=True, timeout=30):
        self.port, self.keepalive, self.timeout = port, keepalive, timeout
        self.sock = None

    def close(self):
        if self.sock:
            self.sock.close()
        self.sock = None

    def call(self, path, auth):
        fresh = self.sock is None or not self.keepalive
        o = self._call(path, auth, fresh)
        o.reused = not fresh
        return o

    def _call(self, path, auth, fresh):
        if fresh:
            self.close()
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.port),
                                                     timeout=self.timeout)
            except ConnectionRefusedError as e:
                return Outcome("refused", detail=repr(e))
            except OSError as e:
                return Outcome("error", detail=f"connect: {e!r}")
        s = self.sock
        req = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n"
               + ("" if self.keepalive else "Connection: close\r\n") + "\r\n").encode()
        buf = bytearray()
        try:
            s.sendall(req)
            while b"\r\n\r\n" not in buf:
                b = s.recv(65536)
                if not b:
                    break
                buf += b
        except (ConnectionResetError, BrokenPipeError) as e:
            self.close()
            if buf:
                return Outcome("partial", detail=repr(e), got=bytes(buf))
            return Outcome("closed", detail=repr(e))
        except socket.timeout as e:
            self.close()
            return Outcome("error", detail=f"timeout {e!r}", got=bytes(buf))
        if b"\r\n\r\n" not in buf:
            self.close()
            if buf:
                return Outcome("partial", detail="EOF in the head", got=bytes(buf))
            return Outcome("closed", detail="EOF before any byte")
        try:
            resp = read_response(s, buf)
        except (AssertionError, OSError) as e:
            self.close()
            return Outcome("partial", detail=repr(e), got=bytes(buf))
        conn_hdr = (resp.header("Connection") or "").lower()
        if not self.keepalive or conn_hdr == "close":
            self.close()
        return Outcome("ok", resp)


# ---------------------------------------------------------------- certificates

def ossl(*args, cwd=None):
    r = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60,
                       cwd=cwd)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])}: {r.stderr.strip()[-300:]}")
    return r.stdout


EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def make_ca(d, name, cn):
    crt, key = os.path.join(d, f"{name}.crt"), os.path.join(d, f"{name}.key")
    ossl("req", "-x509", *EC, "-days", "2", "-subj", f"/CN={cn}",
         "-keyout", key, "-out", crt)
    os.chmod(key, 0o600)
    return crt, key


def make_cert(d, name, cn, ca, usage="clientAuth", san=None, serial=None):
    """A certificate for cn signed by ca=(crt, key); returns (crt, key)."""
    crt, key = os.path.join(d, f"{name}.crt"), os.path.join(d, f"{name}.key")
    csr, ext = os.path.join(d, f"{name}.csr"), os.path.join(d, f"{name}.ext")
    ossl("req", *EC, "-subj", f"/CN={cn}", "-keyout", key, "-out", csr)
    os.chmod(key, 0o600)
    with open(ext, "w") as f:
        f.write(f"extendedKeyUsage={usage}\n")
        if san:
            f.write(f"subjectAltName={san}\n")
    args = ["x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-days", "2",
            "-extfile", ext, "-out", crt]
    args += ["-set_serial", str(serial)] if serial else ["-CAcreateserial"]
    ossl(*args)
    return crt, key


def fingerprint(crt):
    """`sha256:<hex lower>` as the config wants it, computed by openssl and
    cross-checked against the DER bytes."""
    out = ossl("x509", "-in", crt, "-noout", "-fingerprint", "-sha256")
    hexfp = out.strip().split("=", 1)[1].replace(":", "").lower()
    der = ossl_der(crt)
    eq(hashlib.sha256(der).hexdigest(), hexfp, f"fingerprint of {crt}")
    return "sha256:" + hexfp


def ossl_der(crt):
    r = subprocess.run(["openssl", "x509", "-in", crt, "-outform", "DER"],
                       capture_output=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"openssl x509 -outform DER: {r.stderr[-200:]!r}")
    return r.stdout


# ---------------------------------------------------------------- one-shot start


def start_expect_failure(t, conf, name, timeout=10):
    """Starts whmgate with conf (in t.dir) and expects it to exit on its own
    without serving; returns (exit code, stderr). A whmgate that keeps
    running is killed and reported."""
    s = t.session
    path = os.path.join(t.dir, f"{name}.json")
    write_conf(path, conf)
    errp = os.path.join(t.dir, f"{name}.stderr")
    with open(errp, "wb") as errf:
        p = spawn([*s.wrapper, s.bin, "-c", path], stdin=subprocess.DEVNULL,
                  stdout=errf, stderr=errf, cwd=t.dir)
    try:
        rc = p.wait(timeout=timeout * s.slow)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout=10)
        rc = "still running"
    with open(errp, encoding="utf-8", errors="replace") as f:
        return rc, f.read()


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def wait_exit(g, timeout=15):
    """Waits for a gate signalled by the test itself; returns its exit code."""
    try:
        rc = g.proc.wait(timeout=timeout * g.session.slow)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{g.name} did not exit within {timeout}s")
    g.rc = rc
    return rc


def status_ids(path="/proc/self/status"):
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Uid", "Gid", "Groups"):
                out[k] = v.split()
    return out


__all__ = ["ensure_serving", "write_conf", "write_secret", "reload_records", "sighup", "admin_conf",
           "admin_get", "parse_metrics", "scrape", "mval", "samples", "Outcome",
           "RawClient", "ossl", "make_ca", "make_cert", "fingerprint", "ossl_der",
           "start_expect_failure", "port_open", "wait_exit", "status_ids",
           "parse_head", "wait_until", "time"]
