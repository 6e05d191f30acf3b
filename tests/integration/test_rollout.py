"""Production rollout (issue 12; SPEC sections 1, 2 and 9): the admin
listener as load balancers probe it, the command line, the man page,
logging to the journal, sd_notify, packaging and the `-t` checks."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
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
    words = {w for w in ("keygen", "audit verify", "reload") if w in usage}
    assert {"-c", "-t", "-V", "--version", "-h", "--help", "--key", "--pid"} <= opts, opts
    eq(words, {"keygen", "audit verify", "reload"}, "commands in --help")
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

    def __init__(self, ctx, conf, name, env_for, prefix=()):  # noqa: no super().__init__
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
            self.proc = spawn([*prefix, *s.wrapper, s.bin, "-c", self.conf_path],
                              stdin=subprocess.DEVNULL, stdout=errf, stderr=errf,
                              cwd=self.dir, env=dict(os.environ, **env_for(st)))
        self.pid = self.proc.pid


def start_stderr_gate(t, conf, env_for, prefix=()):
    g = StderrGate(t, conf, f"gate{len(t.gates)}", env_for, prefix)
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


# ---------------------------------------------------------------- 5. packaging

INSTALLED = ["/etc/whmgate/whmgate.json", "/etc/default/whmgate",
             "/etc/logrotate.d/whmgate", "/usr/share/doc/whmgate/README.md",
             "/usr/share/man/man8/whmgate.8", "/usr/lib/sysusers.d/whmgate.conf",
             "/usr/bin/whmgate", "/lib/systemd/system/whmgate.service"]
PLACEHOLDERS = ["$.upstream.url", "$.clients.billing.keys[0]",
                "$.clients.billing.whm_token"]


def make_install(t, destdir, target="install"):
    """`make install` (or uninstall) of the binary under test into destdir,
    PREFIX=/usr: BUILD is the session's copy, never rebuilt (-o)."""
    bdir = os.path.dirname(t.session.bin)
    r = subprocess.run(["make", "-s", "-C", ROOT, target, f"DESTDIR={destdir}", "PREFIX=/usr",
                        f"BUILD={bdir}", "-o", t.session.bin],
                       capture_output=True, text=True, timeout=120)
    eq(r.returncode, 0, f"make {target} ({(r.stdout + r.stderr)[-400:]!r})")
    return r.stdout


def files_under(d):
    out = {}
    for base, _, files in os.walk(d):
        for f in files:
            p = os.path.join(base, f)
            out["/" + os.path.relpath(p, d)] = os.stat(p).st_mode & 0o7777
    return out


def unit_settings(path):
    """[(key, value)] of a unit file, in order."""
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", ";", "[")):
                k, _, v = line.partition("=")
                out.append((k, v))
    return out


def ensure_whmgate_user(destdir):
    """The whmgate user on this machine, as `make install` without DESTDIR
    makes it: systemd-sysusers on the installed entry."""
    r = subprocess.run(["systemd-sysusers", destdir + "/usr/lib/sysusers.d/whmgate.conf"],
                       capture_output=True, text=True, timeout=60)
    eq(r.returncode, 0, f"systemd-sysusers ({r.stderr!r})")
    import pwd
    return pwd.getpwnam("whmgate")


def fill_installed_conf(t, destdir, key_hash, url=None):
    """The installed config with its placeholders filled in (and the audit
    folder moved under destdir, as LogsDirectory= would make it)."""
    with open(destdir + "/etc/whmgate/whmgate.json") as f:
        text = f.read()
    logs = destdir + "/var/log/whmgate"
    os.makedirs(logs, exist_ok=True)
    text = text.replace('"file": "/var/log/whmgate/audit.jsonl"', f'"file": "{logs}/audit.jsonl"')
    filled = (text.replace("https://FILL_IN_WHM_HOST:2087", url or t.standin.url)
              .replace("sha256:FILL_IN_the_second_line_of_whmgate_keygen", key_hash))
    return text, filled


def test_rollout_install(t):
    """Issue 12, 2: `make install DESTDIR PREFIX` puts the binary, man page,
    a unit (Type=notify, EnvironmentFile=-/etc/default/whmgate,
    LogsDirectory/StateDirectory, User=whmgate, an ExecReload that reports
    the reload's verdict) that `systemd-analyze verify` accepts and whose
    `systemd-analyze security` exposure is at most 2.5, a sysusers.d entry
    that makes the whmgate user, a logrotate file whose `create` names that
    user and that `logrotate -d` accepts, and a commented config with
    absolute paths that -t refuses only at its placeholders and passes
    once they are filled. `make uninstall` removes it all, keeping an
    edited environment file."""
    d = os.path.join(t.dir, "root")
    make_install(t, d)
    got = files_under(d)
    eq(sorted(got), sorted(INSTALLED), "files installed")
    eq(got["/etc/default/whmgate"], 0o600, "mode of /etc/default/whmgate")
    eq(got["/usr/bin/whmgate"], 0o755, "mode of the binary")
    with open(d + "/usr/bin/whmgate", "rb") as a, open(t.session.bin, "rb") as b:
        assert a.read() == b.read(), "the installed binary is not the one built"

    unit = d + "/lib/systemd/system/whmgate.service"
    s = unit_settings(unit)
    kv = dict(s)
    for k, v in (("Type", "notify"), ("EnvironmentFile", "-/etc/default/whmgate"),
                 ("LogsDirectory", "whmgate"), ("StateDirectory", "whmgate"),
                 ("User", "whmgate"), ("Group", "whmgate"),
                 ("ExecStart", "/usr/bin/whmgate -c /etc/whmgate/whmgate.json"),
                 ("ExecReload", "/usr/bin/whmgate reload -c /etc/whmgate/whmgate.json "
                                "--pid $MAINPID")):
        eq(kv.get(k), v, f"{k}= in the installed unit")
    assert "/usr/local" not in open(unit).read(), "PREFIX not applied to the unit"
    # verify checks that the commands exist and that man:whmgate(8) opens:
    # the copy points at the DESTDIR binary, MANPATH at its man pages.
    vdir = os.path.join(t.dir, "verify")
    os.makedirs(vdir)
    with open(unit) as f, open(vdir + "/whmgate.service", "w") as g:
        g.write(f.read().replace("/usr/bin/whmgate", d + "/usr/bin/whmgate"))
    r = subprocess.run(["systemd-analyze", "verify", vdir + "/whmgate.service"],
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, MANPATH=d + "/usr/share/man"))
    eq((r.returncode, r.stdout + r.stderr), (0, ""), "systemd-analyze verify")
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", unit],
                       capture_output=True, text=True, timeout=120)
    m = re.search(r"Overall exposure level for whmgate.service: ([0-9.]+)", r.stdout)
    assert m, f"systemd-analyze security: {(r.stdout + r.stderr)[-300:]!r}"
    assert float(m.group(1)) <= 2.5, f"exposure {m.group(1)} (was 2.5)"
    t.note(f"exposure {m.group(1)}")

    # The user: sysusers into the DESTDIR, then on this machine for logrotate.
    r = subprocess.run(["systemd-sysusers", f"--root={d}",
                        d + "/usr/lib/sysusers.d/whmgate.conf"],
                       capture_output=True, text=True, timeout=60)
    eq(r.returncode, 0, f"systemd-sysusers --root ({r.stderr!r})")
    with open(d + "/etc/passwd") as f:
        pw = [l.strip().split(":") for l in f if l.startswith("whmgate:")]
    eq(len(pw), 1, "whmgate in the DESTDIR's passwd")
    eq(pw[0][5:], ["/var/lib/whmgate", "/usr/sbin/nologin"], "home and shell")
    assert int(pw[0][2]) < 1000, f"not a system uid: {pw[0]}"
    os.remove(d + "/etc/passwd")
    for f in ("group", "shadow", "gshadow", ".pwd.lock"):
        if os.path.exists(f"{d}/etc/{f}"):
            os.remove(f"{d}/etc/{f}")
    ensure_whmgate_user(d)
    with open(d + "/etc/logrotate.d/whmgate") as f:
        rot = f.read()
    m = re.search(r"^\s*create\s+(\d+)\s+(\S+)\s+(\S+)\s*$", rot, re.M)
    assert m, "no create line in the logrotate file"
    eq((m.group(2), m.group(3)), (kv["User"], kv["Group"]), "create's owner vs the unit's User=")
    assert "/var/log/whmgate/audit.jsonl" in rot, "the rotated path"
    r = subprocess.run(["logrotate", "-d", d + "/etc/logrotate.d/whmgate"],
                       capture_output=True, text=True, timeout=60)
    eq(r.returncode, 0, f"logrotate -d ({r.stderr[-400:]!r})")
    assert "error" not in r.stderr.lower(), f"logrotate -d: {r.stderr[-400:]!r}"

    # The config: commented, absolute paths, refused only at placeholders.
    text, filled = fill_installed_conf(t, d, t.session.keys["billing"][1])
    assert re.search(r"^//", text, re.M) and "FILL_IN" in text, "an uncommented config"
    assert '"/var/log/whmgate/audit.jsonl"' in open(d + "/etc/whmgate/whmgate.json").read()
    raw = os.path.join(t.dir, "installed.json")
    with open(raw, "w") as f:
        f.write(text)
    r = t.run_bin("-t", "-c", raw)
    eq(r.returncode, 1, "-t on the config as installed")
    paths = sorted({l[len(raw) + 2:].split(": ", 1)[0] for l in r.stderr.splitlines()
                    if l.startswith(raw + ": ")})
    # Each placeholder is named; anything else is what follows from one
    # (a client left without a valid key, a URL left unset).
    missing = [p for p in PLACEHOLDERS if p not in paths]
    other = [p for p in paths if not any(ph.startswith(p) for ph in PLACEHOLDERS)]
    eq((missing, other), ([], []), f"problems of the unfilled config ({r.stderr[-500:]!r})")
    ok = os.path.join(t.dir, "filled.json")
    with open(ok, "w") as f:
        f.write(filled)
    r = subprocess.run([t.session.bin, "-t", "-c", ok], capture_output=True, text=True,
                       timeout=30, env=dict(os.environ, WHM_TOKEN_BILLING=t.session.token))
    eq((r.returncode, r.stderr), (0, ""), "-t on the filled config")

    # uninstall: everything but an edited environment file.
    with open(d + "/etc/default/whmgate", "a") as f:
        f.write("WHM_TOKEN_BILLING=X\n")
    out = make_install(t, d, "uninstall")
    assert "kept" in out and "/etc/default/whmgate" in out, f"uninstall said {out!r}"
    eq(sorted(files_under(d)), ["/etc/default/whmgate"], "files left after uninstall")


def reload_cmd(t, g, conf_path=None):
    return t.run_bin("reload", "-c", conf_path or g.conf_path, "--pid", str(g.pid),
                     "--timeout", "10")


def test_rollout_reload_verdict(t):
    """Issue 12, 6 (`systemctl reload` reported success when the reload was
    refused): `whmgate reload`, the unit's ExecReload, exits 0 when the
    daemon took the new config, and 1 with the reason when it refused it:
    a config -t refuses is never signalled (no reload record), one the
    daemon refuses (a changed listen address) is, and the verdict is the
    daemon's."""
    conf = t.conf()
    g = t.gate(conf)
    ensure_serving = g.http("GET", "/probe")        # the loop runs
    eq(ensure_serving.status, 404, "probe")
    wide = json.loads(json.dumps(conf))
    wide["clients"]["support"]["allow"]["accountsummary"] = {}
    write_conf(g.conf_path, wide)
    r = reload_cmd(t, g)
    eq((r.returncode, r.stdout.strip()), (0, f"reloaded {g.conf_path}"),
       f"reload of a good config ({r.stderr!r})")
    eq(g.curl("/json-api/accountsummary?api.version=1&user=cust1",
              auth=f"Bearer {t.key('support')}").status, 200, "the new policy in force")
    reloads = [x for x in g.audit() if x.get("event") == "reload"]
    eq([x.get("result") for x in reloads], ["ok"], "reload records")

    bad = json.loads(json.dumps(wide))
    bad["bogus"] = 1
    write_conf(g.conf_path, bad)
    r = reload_cmd(t, g)
    eq(r.returncode, 1, f"reload of an invalid config ({r.stdout!r} {r.stderr!r})")
    assert f"{g.conf_path}: $.bogus: " in r.stderr, f"the problem: {r.stderr!r}"
    time.sleep(0.3)
    eq(len([x for x in g.audit() if x.get("event") == "reload"]), 1,
       "reload records after an invalid config (never signalled)")

    moved = json.loads(json.dumps(wide))
    moved["listen"] = [f"127.0.0.1:{free_port()}"]
    write_conf(g.conf_path, moved)
    r = reload_cmd(t, g)
    eq(r.returncode, 1, f"reload the daemon refuses ({r.stdout!r} {r.stderr!r})")
    eq(r.stderr.strip(), "reload refused: listen cannot change on reload", "its reason")
    reloads = [x for x in g.audit() if x.get("event") == "reload"]
    eq([x.get("result") for x in reloads], ["ok", "refused"], "reload records")
    eq(g.curl(LIST, auth=f"Bearer {t.key('billing')}").status, 200, "serving after all")
    r = t.run_bin("reload", "-c", g.conf_path)
    eq(r.returncode, 2, "reload without --pid")


def test_rollout_logrotate_reopen(t):
    """Issue 12, 4: the installed logrotate file, run for real (`logrotate
    -f`) on a whmgate that dropped root to the whmgate user: the new
    audit.jsonl is created for whmgate, whmgate reopens it after SIGUSR1 and
    writes the next call's records there (not into audit.jsonl.1), /readyz
    stays 200, and the two files verify as one chain. With the old `create
    0600 root root` the reopen failed and whmgate went on writing to
    audit.jsonl.1."""
    if os.geteuid() != 0:
        t.note("skipped: not root")
        return
    d = os.path.join(t.dir, "root")
    make_install(t, d)
    pw = ensure_whmgate_user(d)
    dirs = [t.dir, t.session.dir]
    modes = {x: os.stat(x).st_mode & 0o7777 for x in dirs}
    for x in dirs:
        os.chmod(x, 0o711)
    try:
        logs = os.path.join(t.dir, "logs")
        os.makedirs(logs)
        os.chown(logs, pw.pw_uid, pw.pw_gid)            # as LogsDirectory= makes it
        os.chmod(logs, 0o750)
        os.chown(t.token_file, pw.pw_uid, pw.pw_gid)
        conf = admin_conf(t.conf())
        conf["user"] = "whmgate"
        conf["audit"]["file"] = os.path.join(logs, "audit.jsonl")
        g = t.gate(conf)
        key = f"Bearer {t.key('billing')}"
        eq(g.curl(LIST, auth=key).status, 200, "a call before the rotation")
        with open(d + "/etc/logrotate.d/whmgate") as f:
            rot = f.read()
        rot = rot.replace("/var/log/whmgate/audit.jsonl", conf["audit"]["file"])
        rot = re.sub(r"(?m)^\s*systemctl kill .*$", f"\t\tkill -USR1 {g.pid}", rot)
        rconf = os.path.join(t.dir, "logrotate.conf")
        with open(rconf, "w") as f:
            f.write(rot)
        r = subprocess.run(["logrotate", "-f", "-s", os.path.join(t.dir, "lr.state"), rconf],
                           capture_output=True, text=True, timeout=60)
        eq(r.returncode, 0, f"logrotate -f ({r.stderr[-400:]!r})")
        new, old = conf["audit"]["file"], conf["audit"]["file"] + ".1"
        st = os.stat(new)
        eq((st.st_uid, st.st_mode & 0o777), (pw.pw_uid, 0o600), "owner and mode of the new file")
        # The reopen record follows the signal; then a call.
        wait_until(lambda: any(x.get("event") == "reopen" for x in _records(old) + _records(new)),
                   5, what="the reopen record")
        time.sleep(0.2)
        r = g.curl(LIST, auth=key)
        eq(r.status, 200, "a call after the rotation")
        rid = r.header("X-Request-Id")
        try:
            wait_until(lambda: [x for x in _records(new) if x.get("id") == rid
                                and x.get("type") == "response"], 5,
                       what="the call's records in the new file")
        except AssertionError:
            in_old = [x.get("type") for x in _records(old) if x.get("id") == rid]
            raise AssertionError(f"the call's records are not in {new} (in the old file: "
                                 f"{in_old}); stderr {g.stderr()[-300:]!r}")
        eq(admin_get(conf, "/readyz")[0], 200, "/readyz after the rotation")
        eq(g.stop(), 0, "exit code")
        v = t.run_bin("audit", "verify", old, new)
        eq(v.returncode, 0, f"audit verify of both files ({(v.stdout + v.stderr)[-300:]!r})")
    finally:
        for x in dirs:
            os.chmod(x, modes[x])


def _records(path):
    try:
        with open(path) as f:
            return [json.loads(l) for l in f if l.strip()]
    except FileNotFoundError:
        return []


# ---------------------------------------------------------------- 6. -t checks

def check_t(t, conf, name, env=None):
    """-t on conf written to name; (exit code, {json path: [problem]}, warnings, stdout)."""
    path = os.path.join(t.dir, name)
    write_conf(path, conf)
    r = subprocess.run([*t.session.wrapper, t.session.bin, "-t", "-c", path],
                       capture_output=True, text=True, timeout=60 * t.session.slow,
                       cwd=t.dir, env=dict(os.environ, **(env or {})))
    problems, warnings = {}, {}
    for line in r.stderr.splitlines():
        if line.startswith(f"warning: {path}: "):
            p, _, text = line[len(path) + 11:].partition(": ")
            warnings.setdefault(p, []).append(text)
        elif line.startswith(path + ": "):
            p, _, text = line[len(path) + 2:].partition(": ")
            problems.setdefault(p, []).append(text)
        else:
            raise AssertionError(f"-t printed a line of no known form: {line!r}")
    assert t.session.token not in r.stdout + r.stderr, "-t printed the token"
    return r.returncode, problems, warnings, r.stdout


def test_rollout_check_audit_folder(t):
    """Issue 12, 3: -t refuses an audit file whose folder is missing (start
    would fail), and passes once it exists."""
    conf = t.conf()
    conf["audit"]["file"] = os.path.join(t.dir, "nowhere", "audit.jsonl")
    rc, problems, _, _ = check_t(t, conf, "c.json")
    eq(rc, 1, f"-t with a missing audit folder ({problems})")
    eq(list(problems), ["$.audit.file"], "the problem's path")
    assert "does not exist" in problems["$.audit.file"][0], problems
    os.makedirs(os.path.join(t.dir, "nowhere"))
    rc, problems, _, out = check_t(t, conf, "c.json")
    eq((rc, problems), (0, {}), "-t once the folder exists")
    assert out.strip().endswith(": ok"), f"stdout {out!r}"


def test_rollout_check_user_access(t):
    """Issue 12, 3: with "user": "nobody", -t refuses root-owned 0600 token,
    TLS key and certificate, CA and HMAC key files (every SIGHUP would be
    refused with Permission denied) and an audit folder nobody cannot
    write, each at its JSON path; it passes once nobody owns them. Start
    logs the same problems as warnings."""
    if os.geteuid() != 0:
        t.note("skipped: not root")
        return
    import pwd
    nobody = pwd.getpwnam("nobody")
    dirs = [t.dir, t.session.dir]
    modes = {x: os.stat(x).st_mode & 0o7777 for x in dirs}
    for x in dirs:
        os.chmod(x, 0o711)
    try:
        logs = os.path.join(t.dir, "logs")
        os.makedirs(logs, mode=0o755)
        secrets = os.path.join(t.dir, "secrets")
        os.makedirs(secrets, mode=0o711)
        files = {}
        for name, src, mode in (("tls.crt", t.session.server_crt, 0o644),
                                ("tls.key", t.session.server_key, 0o600),
                                ("ca.crt", t.session.ca_crt, 0o600),
                                ("token", t.token_file, 0o600)):
            dst = os.path.join(secrets, name)
            with open(src, "rb") as a, open(dst, "wb") as b:
                b.write(a.read())
            os.chmod(dst, mode)
            files[name] = dst
        files["hmac"] = os.path.join(secrets, "hmac")
        with open(files["hmac"], "w") as f:
            f.write(os.urandom(32).hex())
        os.chmod(files["hmac"], 0o600)
        os.chmod(files["tls.crt"], 0o600)
        conf = t.conf()
        conf["user"] = "nobody"
        conf["audit"]["file"] = os.path.join(logs, "audit.jsonl")
        conf["audit"]["hmac_key_file"] = files["hmac"]
        conf["upstream"]["ca_file"] = files["ca.crt"]
        conf["listen_tls"] = [{"address": f"127.0.0.1:{free_port()}",
                               "cert": files["tls.crt"], "key": files["tls.key"]}]
        conf["clients"]["support"]["whm_token"] = {"file": files["token"]}
        rc, problems, _, _ = check_t(t, conf, "c.json")
        eq(rc, 1, "-t with files nobody cannot read")
        # billing's token is the test's own file, root's 0600 as well.
        want = ["$.audit.file", "$.audit.hmac_key_file", "$.upstream.ca_file",
                "$.listen_tls[0].cert", "$.listen_tls[0].key", "$.clients.support.whm_token",
                "$.clients.billing.whm_token"]
        eq(sorted(problems), sorted(want), f"problems ({problems})")
        for p in want:
            assert "user nobody cannot" in problems[p][0] and "Permission denied" in \
                problems[p][0], f"{p}: {problems[p]}"
        assert "write" in problems["$.audit.file"][0], problems["$.audit.file"]
        # Start logs them; -t on the fixed layout passes.
        g = t.gate(dict(conf, listen_tls=[]))
        assert "$.clients.support.whm_token: user nobody cannot read" in g.stderr(), \
            f"start did not warn: {g.stderr()[-600:]!r}"
        g.stop()
        for f in files.values():
            os.chown(f, nobody.pw_uid, nobody.pw_gid)
        os.chown(logs, nobody.pw_uid, nobody.pw_gid)
        os.chown(t.token_file, nobody.pw_uid, nobody.pw_gid)
        os.chown(conf["audit"]["file"], nobody.pw_uid, nobody.pw_gid)
        rc, problems, _, _ = check_t(t, conf, "c.json")
        eq((rc, problems), (0, {}), "-t once nobody owns the files")
        # The config file itself is re-read on reload.
        path = os.path.join(t.dir, "c.json")
        os.chmod(path, 0o600)
        r = t.run_bin("-t", "-c", path)
        eq(r.returncode, 1, "-t with a config nobody cannot read")
        assert f"{path}: $: user nobody cannot read {path}" in r.stderr, r.stderr
    finally:
        for x in dirs:
            os.chmod(x, modes[x])


def test_rollout_check_shared_key(t):
    """Issue 12, 3: one key hash under two clients is a -t error (the same
    Bearer key acted as billing, and as support with `whm support:<key>`),
    and whmgate does not start with it."""
    conf = t.conf()
    conf["clients"]["support"]["keys"].append(t.session.keys["billing"][1])
    rc, problems, _, _ = check_t(t, conf, "c.json")
    eq(rc, 1, "-t with one key under two clients")
    eq(problems, {"$.clients.support.keys[1]": [
        "the same key as $.clients.billing.keys[0]: one secret must name one client"]},
       "the problem")
    from opslib import start_expect_failure
    rc, err = start_expect_failure(t, conf, "shared")
    assert rc not in (0, "still running"), f"start with a shared key: {rc}"
    assert "$.clients.support.keys[1]" in err, err[-300:]


def test_rollout_check_warnings(t):
    """Issue 12 / SPEC 2: -t prints `warning: FILE: <path>: <text>` and
    still exits 0 for insecure_skip_verify, a source of 0.0.0.0/0 or ::/0,
    an expires in the past or within 14 days; none for a normal config."""
    import datetime
    rc, problems, warnings, out = check_t(t, t.conf(), "plain.json")
    eq((rc, problems, warnings), (0, {}, {}), "-t on the plain config")
    conf = t.conf(insecure_skip_verify=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    soon = (now + datetime.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    past = (now - datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (now + datetime.timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    conf["clients"]["billing"]["source"] = ["10.0.0.0/8", "0.0.0.0/0"]
    conf["clients"]["billing"]["expires"] = soon
    conf["clients"]["support"]["source"] = ["::/0"]
    conf["clients"]["support"]["expires"] = past
    conf["clients"]["old"] = t.client("old", expires=later)
    rc, problems, warnings, out = check_t(t, conf, "warn.json")
    eq((rc, problems), (0, {}), "-t exit code and problems with warnings")
    assert out.strip().endswith(": ok"), f"stdout {out!r}"
    eq(sorted(warnings), sorted(["$.upstream.insecure_skip_verify",
                                 "$.clients.billing.source[1]", "$.clients.billing.expires",
                                 "$.clients.support.source[0]", "$.clients.support.expires"]),
       f"warnings ({warnings})")
    assert soon in warnings["$.clients.billing.expires"][0], warnings
    assert "expired" in warnings["$.clients.support.expires"][0], warnings


# ---------------------------------------------------------------- README walk-through

def test_rollout_walkthrough(t):
    """Issue 12: README.md's production walk-through, run line by line
    (tests/integration/walkthrough.py, in a private mount and network
    namespace; systemctl/journalctl are tests/integration/fake_systemd.py,
    which runs the installed unit's User=, EnvironmentFile=, ExecStartPre=,
    Type=notify, ExecReload= as systemd would): every step exits 0, the
    calls reach WHM with the token from /etc/default/whmgate, the reload is
    reported ok, logrotate leaves two files for the whmgate user that verify
    as one chain, HAProxy with the README's backend sees the server UP."""
    if os.geteuid() != 0:
        t.note("skipped: not root")
        return
    probe = subprocess.run(["unshare", "--mount", "--net", "true"], capture_output=True)
    if probe.returncode != 0:
        t.note(f"skipped: no mount/network namespace ({probe.stderr.strip()[:80]!r})")
        return
    if not shutil.which("haproxy"):
        raise AssertionError("haproxy is not installed (make deps)")
    work = os.path.join(t.dir, "walk")
    os.makedirs(work)
    s = t.session
    cmd = ["unshare", "--mount", "--net", "--propagation", "private", sys.executable,
           os.path.join(ROOT, "tests", "integration", "walkthrough.py"), "--repo", ROOT,
           "--bin", s.bin, "--work", work, "--cert", s.server_crt, "--key", s.server_key,
           "--ca", s.ca_crt, "--token", s.token]
    p = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        so, se = p.communicate(timeout=300 * s.slow)
    except subprocess.TimeoutExpired:
        p.kill()
        raise AssertionError("the walk-through did not finish in 300 s")
    lines = so.decode("utf-8", "replace").strip().splitlines()
    assert lines, f"walkthrough.py printed nothing (exit {p.returncode}): {se[-600:]!r}"
    out = json.loads(lines[-1])
    steps = out["steps"]
    failed = [x for x in steps if x["rc"] != 0]
    assert not failed, (f"step failed: {failed[0]['step']!r} exit {failed[0]['rc']}: "
                        f"{(failed[0]['out'] + failed[0]['err'])[-500:]!r}")
    by = {x["step"].split()[0] + " " + x["step"].split()[1]: x for x in steps}
    assert len(steps) >= 15, f"only {len(steps)} steps read from README.md"
    ready = [x for x in steps if "/readyz" in x["step"]]
    eq(ready[0]["out"], "ready\n", "/readyz over HTTP/1.0 without Host")
    head = [x for x in steps if x["step"].startswith("curl -fsSI")]
    assert head[0]["out"].startswith("HTTP/1.1 200"), head[0]["out"][:80]
    calls = [x for x in steps if "Authorization: Bearer" in x["step"]]
    eq([json.loads(x["out"])["metadata"]["result"] for x in calls], [1, 1],
       "WHM's verdicts on the two calls")
    metrics = [x for x in steps if "/metrics" in x["step"]]
    assert re.match(r"whmgate_audit_records_total \d+", metrics[0]["out"]), metrics[0]["out"]
    reload = by["systemctl reload"]
    assert "reloaded /etc/whmgate/whmgate.json" in reload["out"], reload
    verify = [x for x in steps if x["step"].startswith("whmgate audit verify")]
    assert "BROKEN" not in verify[0]["out"] + verify[0]["err"], verify[0]   # and exit 0
    journal = by["journalctl -u"]["out"].splitlines()
    assert any("started" in l for l in journal), f"journal: {journal[:5]}"
    assert not any(l.startswith("<") for l in journal), "priority prefixes left in the journal"
    eq([(q["path"], q["auth"]) for q in out["standin"]],
       [("/json-api/listaccts", [f"whm root:{s.token}"]),
        ("/json-api/version", [f"whm root:{s.token}"])], "what WHM received")
    eq(out["haproxy"] and (out["haproxy"]["status"], out["haproxy"]["check_code"]),
       ("UP", "200"), f"HAProxy's view of gw1 ({out['haproxy']})")
    eq(out.get("stop"), 0, "systemctl stop")
    audit = out["audit"]
    eq(sorted(audit), ["audit.jsonl", "audit.jsonl.1"], "audit files after logrotate")
    for f, a in audit.items():
        eq((a["uid"], a["mode"]), (out["whmgate_uid"], 0o600), f"owner and mode of {f}")
    assert "reload" in audit["audit.jsonl.1"]["events"], audit
    eq(audit["audit.jsonl"]["events"][-1], "stop", "the last record")
    assert "response" in audit["audit.jsonl"]["events"], \
        f"the call after the rotation is not in the new file: {audit}"
    ready_msgs = [m for m in out["notify"] if "READY=1" in m]
    assert ready_msgs, f"no READY=1: {out['notify']}"
    t.note(f"{len(steps)} README steps; HAProxy check {out['haproxy']['check_status']}")


def test_rollout_upstream_failure_logged(t):
    """Issue 12, 6: a failed WHM connection is logged at warning (<4> on
    the journal) with curl's concrete reason — the certificate problem for
    a WHM whose certificate is not trusted, the port for a refused
    connection — not its code's generic text ("SSL peer certificate or SSH
    remote key was not OK", "Couldn't connect to server")."""
    bad = t.session.untrusted_standin()
    port = free_port()
    for url, want in ((bad.url, r"upstream tls: SSL certificate problem: self.signed certificate"),
                      (f"https://127.0.0.1:{port}",
                       rf"upstream connect: Failed to connect to 127\.0\.0\.1 port {port}")):
        g = start_stderr_gate(t, t.conf(url), lambda st: {
            "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        r = g.curl(LIST, auth=f"Bearer {t.key('billing')}")
        eq(r.status, 502, f"a call to {url}")
        rid = r.header("X-Request-Id")
        eq(g.stop(), 0, "exit code")
        lines = [l for l in g.stderr().splitlines() if rid in l]
        eq(len(lines), 1, f"log lines of {rid}: {lines}")
        assert re.match(rf"<4>request {rid}: {want}", lines[0]), \
            f"the line {lines[0]!r} (want <4>... {want})"


def test_rollout_metrics_build_and_expiry(t):
    """Issue 12, 7: /metrics has whmgate_build_info{version} and, for each
    client with an expires, whmgate_client_key_expiry_timestamp_seconds
    {client} with that time (none for a client without); a reload that
    moves an expiry moves the gauge."""
    import calendar
    from opslib import samples, scrape
    conf = admin_conf(t.conf())
    conf["clients"]["billing"]["expires"] = "2031-05-06T07:08:09Z"
    conf["clients"]["old.svc"] = t.client("old", expires="2030-01-01T00:00:00Z")
    g = t.gate(conf)
    m, text = scrape(conf)
    eq(samples(m, "whmgate_build_info"), [({"version": t.session.version}, 1.0)], "build_info")
    want = {"billing": calendar.timegm((2031, 5, 6, 7, 8, 9)),
            "old.svc": calendar.timegm((2030, 1, 1, 0, 0, 0))}
    got = {lab["client"]: v for lab, v in samples(m, "whmgate_client_key_expiry_timestamp_seconds")}
    eq(got, want, "key expiry gauges")
    assert "# TYPE whmgate_client_key_expiry_timestamp_seconds gauge" in text
    moved = json.loads(json.dumps(conf))
    moved["clients"]["billing"]["expires"] = "2032-01-01T00:00:00Z"
    del moved["clients"]["old.svc"]["expires"]
    eq(sighup(g, moved).get("result"), "ok", "reload")
    m, _ = scrape(conf)
    got = {lab["client"]: v for lab, v in samples(m, "whmgate_client_key_expiry_timestamp_seconds")}
    eq(got, {"billing": calendar.timegm((2032, 1, 1, 0, 0, 0))}, "gauges after the reload")


def test_rollout_user_already_dropped(t):
    """A whmgate started as its "user" already (systemd's User= with the
    same name in the config) checks and starts: nothing to drop (setgroups
    needs root); -t as another non-root user says why it cannot switch."""
    if os.geteuid() != 0:
        t.note("skipped: not root")
        return
    import pwd
    nobody = pwd.getpwnam("nobody")
    dirs = [t.dir, t.session.dir]
    modes = {x: os.stat(x).st_mode & 0o7777 for x in dirs}
    for x in dirs:
        os.chmod(x, 0o711)
    try:
        logs = os.path.join(t.dir, "logs")
        os.makedirs(logs)
        os.chown(logs, nobody.pw_uid, nobody.pw_gid)
        os.chown(t.token_file, nobody.pw_uid, nobody.pw_gid)
        conf = t.conf()
        conf["user"] = "nobody"
        conf["audit"]["file"] = os.path.join(logs, "audit.jsonl")
        as_nobody = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                     "--clear-groups"]
        path = os.path.join(t.dir, "c.json")
        write_conf(path, conf)
        r = subprocess.run([*as_nobody, t.session.bin, "-t", "-c", path],
                           capture_output=True, text=True, timeout=30)
        eq((r.returncode, r.stderr), (0, ""), "-t as nobody with user nobody")
        g = start_stderr_gate(t, conf, lambda st: {}, prefix=as_nobody)
        eq(g.curl(LIST, auth=f"Bearer {t.key('billing')}").status, 200, "a call")
        eq(g.stop(), 0, "exit code")
        # Another unprivileged user cannot switch to nobody (tokens from
        # the environment, so that is the only problem).
        other = [x for x in pwd.getpwall() if x.pw_uid not in (0, nobody.pw_uid)
                 and x.pw_uid < 65534][0]
        for c in conf["clients"].values():
            c["whm_token"] = {"env": "WHM_TOKEN"}
        write_conf(path, conf)
        r = subprocess.run(["setpriv", f"--reuid={other.pw_uid}", f"--regid={other.pw_gid}",
                            "--clear-groups", t.session.bin, "-t", "-c", path],
                           capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, WHM_TOKEN=t.session.token))
        eq(r.returncode, 1, f"-t as {other.pw_name} ({r.stderr!r})")
        assert f"{path}: $.user: switching to nobody needs root" in r.stderr, r.stderr
    finally:
        for x in dirs:
            os.chmod(x, modes[x])
