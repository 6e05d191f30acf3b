"""Production rollout (issue 12; SPEC sections 1, 2 and 9): the admin
listener as load balancers probe it, the command line, the man page,
logging to the journal, sd_notify, packaging and the `-t` checks."""
import json
import os
import re
import socket
import subprocess
import time

from lib import ROOT, Gate, eq, free_port, parse_head, spawn, wait_until
from opslib import admin_conf, admin_get, sighup, write_conf

LIST = "/json-api/listaccts?api.version=1"


def admin_raw(conf, data, timeout=10):
    """Sends bytes to the admin listener and reads until it closes; returns
    (status, headers, body)."""
    host, port = conf["admin"].rsplit(":", 1)
    port = int(port)
    wait_until(lambda: _can_connect(host, port), timeout, what="the admin port")
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(data)
        got = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
    finally:
        s.close()
    head, sep, body = got.partition(b"\r\n\r\n")
    assert sep, f"no complete head from the admin listener: {got[:200]!r}"
    status, hdrs = parse_head(head)
    return status, dict((k.lower(), v) for k, v in hdrs), body, head


def _can_connect(host, port):
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- 1. admin listener

def test_rollout_admin_health_checks(t):
    """Issue 12, 1: HAProxy's `option httpchk GET /readyz` (HTTP/1.0, no
    Host) and `curl -I` (HEAD) are answered; a HEAD gets GET's head and no
    body; other methods get 405 with Allow; a bad request line 400."""
    conf = admin_conf(t.conf())
    t.gate(conf)
    # What HAProxy sends by default.
    status, hdrs, body, head = admin_raw(conf, b"GET /readyz HTTP/1.0\r\n\r\n")
    eq((status, body), (200, b"ready\n"), "HTTP/1.0 GET /readyz without Host")
    assert head.startswith(b"HTTP/1.0 200 "), f"status line for a 1.0 client: {head[:40]!r}"
    status, hdrs, body, _ = admin_raw(conf, b"GET /healthz HTTP/1.0\r\n"
                                      b"User-Agent: HAProxy\r\nConnection: close\r\n\r\n")
    eq((status, body), (200, b"ok\n"), "HTTP/1.0 GET /healthz with headers, no Host")
    # HEAD: the head GET would get, no body.
    status, hdrs, body, _ = admin_raw(conf, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    eq((status, hdrs.get("content-length"), body), (200, "3", b""), "HEAD /healthz")
    status, hdrs, body, _ = admin_raw(conf, b"HEAD /readyz HTTP/1.0\r\n\r\n")
    eq((status, hdrs.get("content-length"), body), (200, "6", b""), "HEAD /readyz (1.0)")
    # curl -I, as an operator types it.
    host, port = conf["admin"].rsplit(":", 1)
    r = subprocess.run(["curl", "-sS", "-I", "--max-time", "10",
                        f"http://{host}:{port}/healthz"], capture_output=True, timeout=20)
    eq(r.returncode, 0, f"curl -I exit code ({r.stderr!r})")
    assert re.match(rb"HTTP/1\.1 200 ", r.stdout), f"curl -I /healthz: {r.stdout[:80]!r}"
    r = subprocess.run(["curl", "-sS", "-I", "-0", "--max-time", "10",
                        f"http://{host}:{port}/metrics"], capture_output=True, timeout=20)
    assert re.match(rb"HTTP/1\.0 200 ", r.stdout), f"curl -I -0 /metrics: {r.stdout[:80]!r}"
    # A query string does not change the path.
    eq(admin_raw(conf, b"GET /healthz?from=lb HTTP/1.0\r\n\r\n")[0], 200, "/healthz?query")
    eq(admin_raw(conf, b"GET /nothing HTTP/1.0\r\n\r\n")[0], 404, "unknown path")
    status, hdrs, body, _ = admin_raw(conf, b"POST /readyz HTTP/1.1\r\nHost: x\r\n"
                                      b"Content-Length: 0\r\n\r\n")
    eq((status, hdrs.get("allow")), (405, "GET, HEAD"), "POST /readyz")
    eq(admin_raw(conf, b"GET /readyz HTTP/2.0\r\n\r\n")[0], 400, "HTTP/2.0 request line")
    eq(admin_raw(conf, b"GET /" + b"a" * 400 + b" HTTP/1.0\r\n\r\n")[0], 414, "long target")
    eq(admin_raw(conf, b"BREW /readyz HTTP/1.0\r\n\r\n")[0], 400, "not a method")
    # Normal clients still work.
    eq(admin_get(conf, "/readyz")[0], 200, "HTTP/1.1 GET /readyz with Host")


def test_rollout_admin_readyz_audit_unwritable(t):
    """Issue 12, 1: /readyz as a load balancer sends it fails (503) while
    the audit trail cannot be written (audit.file is /dev/full), and
    /healthz still says the process runs."""
    conf = admin_conf(t.conf())
    conf["audit"]["file"] = "/dev/full"
    g = t.gate(conf)
    # The first record (start) fails to write; the trail is faulted.
    r = g.curl(LIST, auth=f"Bearer {t.key('billing')}")
    eq(r.status, 503, "a call while the trail cannot be written")
    status, _, body, _ = admin_raw(conf, b"GET /readyz HTTP/1.0\r\n\r\n")
    eq((status, body), (503, b"audit trail not writable\n"), "HAProxy-style /readyz")
    status, hdrs, body, _ = admin_raw(conf, b"HEAD /readyz HTTP/1.0\r\n\r\n")
    eq((status, body), (503, b""), "HEAD /readyz")
    eq(admin_raw(conf, b"GET /healthz HTTP/1.0\r\n\r\n")[0], 200, "/healthz")
    eq(t.standin.requests(), [], "requests WHM received")


# ---------------------------------------------------------------- 2. command line, man page

def _pkg_version(name):
    r = subprocess.run(["pkg-config", "--modversion", name], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 0, f"pkg-config {name}: {r.stderr.strip()}"
    return r.stdout.strip()


def _llhttp_version():
    parts = {}
    with open("/usr/share/include/llhttp/llhttp.h") as f:
        for line in f:
            m = re.match(r"#define LLHTTP_VERSION_(MAJOR|MINOR|PATCH) (\d+)", line)
            if m:
                parts[m.group(1)] = m.group(2)
    return f"{parts['MAJOR']}.{parts['MINOR']}.{parts['PATCH']}"


def test_rollout_cli_help_version(t):
    """Issue 12, 8: --help and -h print the usage on stdout and exit 0;
    --version and -V exit 0 with whmgate's version and those of libuv,
    llhttp, OpenSSL, libcurl and yajl (as the system's packages say); an
    unknown option is a usage error (2, usage on stderr)."""
    for flag in ("--help", "-h"):
        r = t.run_bin(flag)
        eq(r.returncode, 0, f"exit code of {flag} (stderr {r.stderr[-200:]!r})")
        assert r.stdout.startswith("usage: whmgate"), f"{flag} stdout: {r.stdout[:120]!r}"
        for word in ("-c FILE", "-t", "keygen", "audit verify", "--version", "--help"):
            assert word in r.stdout, f"{flag} does not mention {word!r}: {r.stdout!r}"
        eq(r.stderr, "", f"stderr of {flag}")
    want = {"whmgate": t.session.version, "libuv": _pkg_version("libuv"),
            "llhttp": _llhttp_version(), "OpenSSL": _pkg_version("openssl"),
            "libcurl": _pkg_version("libcurl"), "yajl": _pkg_version("yajl")}
    for flag in ("--version", "-V"):
        r = t.run_bin(flag)
        eq(r.returncode, 0, f"exit code of {flag}")
        got = {}
        for line in r.stdout.splitlines():
            name, _, rest = line.partition(" ")
            got[name] = rest.split(" ")[0]
        eq(got, want, f"versions printed by {flag}")
        assert re.fullmatch(r"\d+\.\d+\.\d+", got["whmgate"]), f"whmgate version {got}"
    for bad in (["--bogus"], ["-x"], ["-c"]):
        r = t.run_bin(*bad)
        eq(r.returncode, 2, f"exit code of {bad}")
        assert r.stderr.startswith("usage: whmgate"), f"stderr of {bad}: {r.stderr[:120]!r}"


def test_rollout_man_page(t):
    """Issue 12, 8: man/whmgate.8 passes `mandoc -T lint` (warnings and
    worse) and documents every option and command --help lists."""
    page = os.path.join(ROOT, "man", "whmgate.8")
    r = subprocess.run(["mandoc", "-T", "lint", "-W", "warning", page], capture_output=True,
                       text=True, timeout=30)
    eq((r.returncode, r.stdout + r.stderr), (0, ""), "mandoc -T lint -W warning")
    r = subprocess.run(["mandoc", "-T", "utf8", page], capture_output=True, text=True,
                       timeout=30, env=dict(os.environ, MANWIDTH="200"))
    eq(r.returncode, 0, "mandoc -T utf8")
    text = re.sub(r".\x08", "", r.stdout)
    usage = t.run_bin("--help").stdout
    opts = set(re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", usage))
    words = {w for w in ("keygen", "audit verify") if w in usage}
    assert {"-c", "-t", "-V", "--version", "-h", "--help", "--key"} <= opts, opts
    missing = [o for o in sorted(opts | words) if o not in text]
    assert not missing, f"the man page does not document {missing}"
    for section in ("SYNOPSIS", "SIGNALS", "ENVIRONMENT", "FILES", "EXIT STATUS"):
        assert section in text, f"no {section} section"
    for env in ("NOTIFY_SOCKET", "JOURNAL_STREAM"):
        assert env in text, f"the man page does not mention {env}"


# ---------------------------------------------------------------- 3. logging to the journal

class StderrGate(Gate):
    """A Gate whose environment may depend on its stderr file (its device
    and inode, as systemd puts them in JOURNAL_STREAM)."""

    def __init__(self, ctx, conf, name, env_for):  # noqa: super().__init__ spawns
        self.ctx = ctx
        self.session = s = ctx.session
        self.name = name
        self.dir = ctx.dir
        self.conf = conf
        self.conf_path = os.path.join(self.dir, f"{name}.json")
        write_conf(self.conf_path, conf)
        self.port = int(conf["listen"][0].rsplit(":", 1)[1])
        self.audit_path = conf["audit"]["file"]
        self.err = os.path.join(self.dir, f"{name}.stderr")
        self.rc = None
        with open(self.err, "wb") as errf:
            st = os.fstat(errf.fileno())
            self.proc = spawn([*s.wrapper, s.bin, "-c", self.conf_path],
                              stdin=subprocess.DEVNULL, stdout=errf, stderr=errf,
                              cwd=self.dir, env=dict(os.environ, **env_for(st)))
        self.pid = self.proc.pid


def start_stderr_gate(t, conf, env_for):
    g = StderrGate(t, conf, f"gate{len(t.gates)}", env_for)
    t.gates.append(g)
    g.wait_ready()
    return g


def test_rollout_journal_priorities(t):
    """Issue 12, 6: with JOURNAL_STREAM naming stderr, every line whmgate
    writes starts with its <N> priority (warning 4, info 6, error 3) and a
    refused reload with two problems is two lines, each `<3>reload
    refused: FILE: <path>: ...`; with JOURNAL_STREAM naming another file
    (stderr redirected) the lines keep the plain form."""
    conf = t.conf(insecure_skip_verify=True)
    g = start_stderr_gate(t, conf, lambda st: {
        "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
    bad = json.loads(json.dumps(conf))
    bad["bogus"] = 1
    bad["audit"]["fsync"] = "sometimes"
    rec = sighup(g, bad)
    eq(rec.get("result"), "refused", f"reload record ({rec})")
    eq(g.stop(), 0, "exit code")
    lines = g.stderr().splitlines()
    assert lines, "no stderr at all"
    plain = [l for l in lines if not re.match(r"<[0-7]>\S", l)]
    eq(plain, [], "lines without a <N> prefix")
    warn = [l for l in lines if "insecure_skip_verify" in l]
    assert warn and all(l.startswith("<4>") for l in warn), f"the warning: {warn}"
    assert any(l.startswith("<6>") and "started" in l for l in lines), \
        f"no <6> start line: {lines[:6]}"
    refused = [l for l in lines if "reload refused" in l]
    want = [f"<3>reload refused: {g.conf_path}: $.bogus: ",
            f"<3>reload refused: {g.conf_path}: $.audit.fsync: "]
    for w in want:
        assert any(l.startswith(w) for l in refused), f"no line {w!r} in {refused}"
    eq(len(refused), 2, f"lines of the refused reload ({refused})")
    assert any(l.startswith("<6>") for l in lines if "draining" in l), "no <6> drain line"

    # stderr is no longer the stream systemd named: no prefix.
    g2 = start_stderr_gate(t, t.conf(insecure_skip_verify=True), lambda st: {
        "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"})
    eq(g2.stop(), 0, "exit code")
    lines = g2.stderr().splitlines()
    assert lines and all(re.match(r"\d{4}-\d\d-\d\dT\S+Z whmgate\[\w+\]: ", l)
                         for l in lines), f"plain lines: {lines[:4]}"


# ---------------------------------------------------------------- 4. sd_notify

def notify_socket(t, abstract=False):
    """A datagram socket as systemd's notify socket; (socket, NOTIFY_SOCKET)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = f"whmgate-test-{os.getpid()}-{os.urandom(4).hex()}"
        s.bind("\0" + name)
        return s, "@" + name
    path = os.path.join(t.dir, "notify.sock")
    s.bind(path)
    return s, path


def notify_msgs(s, n, timeout=10):
    """The next n datagrams, each as {KEY: value}; fails on fewer."""
    out = []
    s.settimeout(timeout)
    for _ in range(n):
        try:
            data = s.recv(4096)
        except socket.timeout:
            raise AssertionError(f"{len(out)} notify messages, want {n}: {out}")
        out.append(dict(line.split("=", 1) for line in data.decode().split("\n")))
    return out


def no_more(s, wait=0.3):
    s.settimeout(wait)
    try:
        extra = s.recv(4096)
    except socket.timeout:
        return
    raise AssertionError(f"an unexpected notify message: {extra!r}")


def test_rollout_sd_notify(t):
    """Issue 12, 2 (Type=notify): READY=1 once whmgate serves; at SIGHUP
    RELOADING=1 with MONOTONIC_USEC (CLOCK_MONOTONIC, in the window of the
    signal) then READY=1; a refused reload READY=1 with STATUS=reload
    refused: <first problem>; STOPPING=1 at SIGTERM. Also to an abstract
    socket (@name)."""
    s, addr = notify_socket(t)
    conf = t.conf()
    g = t.gate(conf, env={"NOTIFY_SOCKET": addr})
    m = notify_msgs(s, 1)[0]
    eq(m.get("READY"), "1", f"first message {m}")
    assert m.get("STATUS", "").startswith("serving"), f"STATUS at start: {m}"
    eq(g.curl(LIST, auth=f"Bearer {t.key('billing')}").status, 200, "a call once READY")

    wide = json.loads(json.dumps(conf))
    wide["clients"]["support"]["allow"]["accountsummary"] = {}
    before = time.monotonic_ns() // 1000
    rec = sighup(g, wide)
    after = time.monotonic_ns() // 1000
    eq(rec.get("result"), "ok", "reload record")
    reloading, ready = notify_msgs(s, 2)
    eq(reloading.get("RELOADING"), "1", f"first message of a reload {reloading}")
    usec = int(reloading.get("MONOTONIC_USEC", "0"))
    assert before <= usec <= after, f"MONOTONIC_USEC {usec} not in [{before}, {after}]"
    eq(ready.get("READY"), "1", f"after the reload {ready}")

    bad = json.loads(json.dumps(conf))
    bad["bogus"] = 1
    rec = sighup(g, bad)
    eq(rec.get("result"), "refused", "reload record of a bad config")
    reloading, ready = notify_msgs(s, 2)
    eq(reloading.get("RELOADING"), "1", f"first message of a refused reload {reloading}")
    eq(ready.get("READY"), "1", f"after a refused reload {ready}")
    want = f"reload refused: {g.conf_path}: $.bogus: "
    assert ready.get("STATUS", "").startswith(want), f"STATUS {ready} (want {want!r}...)"
    no_more(s)
    eq(g.stop(), 0, "exit code")
    m = notify_msgs(s, 1)[0]
    eq(m.get("STOPPING"), "1", f"message at SIGTERM {m}")
    no_more(s)

    a, name = notify_socket(t, abstract=True)
    g2 = t.gate(t.conf(), env={"NOTIFY_SOCKET": name})
    eq(notify_msgs(a, 1)[0].get("READY"), "1", f"READY=1 to {name}")
    eq(g2.stop(), 0, "exit code")
    eq(notify_msgs(a, 1)[0].get("STOPPING"), "1", f"STOPPING=1 to {name}")
