"""`whmgate audit verify` in the field (SPEC section 7; issue 13 items 3
and 4): a trail rotated by the real logrotate (compress, delaycompress)
verified as `audit verify audit.jsonl*` in the shell's own order, stdin
and gzip input, exit codes 0 / 1 / 2, the `head SEQ:HASH` summary and
`--anchor`, which catches lines cut off the end of a trail."""
import gzip
import hashlib
import json
import os
import re
import shlex
import subprocess

from auditlib import call, check_chain, read_trail
from lib import eq, free_port, wait_until

LIST = "/json-api/listaccts?api.version=1"


def sha(b):
    return hashlib.sha256(b).hexdigest()


def run_verify(t, *args, stdin=None, cwd=None, shell=None):
    """(exit code, stdout + stderr). shell: a command line run by sh in
    cwd, with WHMGATE standing for the binary."""
    s = t.session
    if shell is not None:
        cmd = ["sh", "-c", shell.replace("WHMGATE", " ".join(
            shlex.quote(x) for x in [*s.wrapper, s.bin]))]
    else:
        cmd = [*s.wrapper, s.bin, "audit", "verify", *args]
    r = subprocess.run(cmd, input=stdin, capture_output=True, cwd=cwd or t.dir,
                       timeout=60 * s.slow)
    return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")


def head_of(out):
    m = re.search(r"^head (\d+):([0-9a-f]{64})$", out, re.M)
    assert m, f"no head line in {out!r}"
    assert out.rstrip("\n").endswith(m.group(0)), f"the summary does not end with head: {out!r}"
    return int(m.group(1)), m.group(2)


def trail_of_calls(t, calls=4):
    """A stopped whmgate's trail: (path, lines)."""
    g = t.gate()
    key = t.key("billing")
    for i in range(calls):
        call(g, LIST + f"&search=cust{i}", key)
    eq(g.stop(), 0, "exit code")
    lines, torn = read_trail(g.audit_path)
    eq(torn, b"", "torn tail")
    return g.audit_path, lines


def rotated_trail(t, rotations):
    """whmgate writing logs/audit.jsonl, rotated `rotations` times by
    logrotate (compress, delaycompress, postrotate sends SIGUSR1), with
    calls before and after every rotation. Returns (gate, log dir)."""
    logdir = os.path.join(t.dir, "logs")
    os.makedirs(logdir)
    conf = t.conf()
    conf["audit"]["file"] = os.path.join(logdir, "audit.jsonl")
    g = t.gate(conf)
    key = t.key("billing")
    lr_conf = os.path.join(t.dir, "logrotate.conf")
    state = os.path.join(t.dir, "logrotate.state")
    with open(lr_conf, "w") as f:
        f.write(f"""{logdir}/audit.jsonl {{
    rotate 10
    compress
    delaycompress
    missingok
    postrotate
        kill -USR1 {g.pid}
    endscript
}}
""")
    for n in range(rotations):
        for i in range(3):
            r = call(g, LIST + f"&search=r{n}c{i}", key)
            eq(r.status, 200, "status")
        g.records(r.header("X-Request-Id"))
        r = subprocess.run(["logrotate", "-f", "-s", state, lr_conf],
                           capture_output=True, text=True, timeout=30)
        eq(r.returncode, 0, f"logrotate exit code ({r.stderr.strip()})")
        # logrotate does not create the file (no `create`): whmgate's
        # reopen does. (The reopen record may go to either file.)
        wait_until(lambda: os.path.exists(conf["audit"]["file"]),
                   5 * t.session.slow, what="the reopened audit file")
    r = call(g, LIST + "&search=last", key)
    g.records(r.header("X-Request-Id"))
    eq(g.stop(), 0, "exit code")
    return g, logdir


def file_lines(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    assert data.endswith(b"\n"), f"{path} does not end with a newline"
    return data.split(b"\n")[:-1]


def test_audit_verify_logrotate_glob(t):
    """13.3 A trail rotated 5 times by logrotate with compress and
    delaycompress verifies as `audit verify audit.jsonl*` in the shell's
    own order (audit.jsonl first, .1, then .2.gz ... .5.gz): verify puts
    the files in chain order by their links, says so, and ends with the
    head of the chain, the last line of audit.jsonl."""
    g, logdir = rotated_trail(t, 5)
    names = sorted(os.listdir(logdir))
    eq(names, ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2.gz", "audit.jsonl.3.gz",
               "audit.jsonl.4.gz", "audit.jsonl.5.gz"], "files after 5 rotations")
    # The chain across the files, checked without whmgate, oldest first.
    chain = ["audit.jsonl.5.gz", "audit.jsonl.4.gz", "audit.jsonl.3.gz", "audit.jsonl.2.gz",
             "audit.jsonl.1", "audit.jsonl"]
    prev = "0" * 64
    total = 0
    for name in chain:
        lines = file_lines(os.path.join(logdir, name))
        prev = check_chain(lines, prev=prev, what=name)
        total += len(lines)
    last = file_lines(os.path.join(logdir, "audit.jsonl"))[-1]

    rc, out = run_verify(t, shell="WHMGATE audit verify audit.jsonl*", cwd=logdir)
    eq(rc, 0, f"exit code of verify audit.jsonl* ({out.strip()[-400:]!r})")
    assert out.startswith(f"OK: {total} records in 6 file(s), chain intact"), out
    order = re.search(r"^order: (.*) \(put in chain order by their links\)$", out, re.M)
    assert order, f"no reordering said: {out!r}"
    eq(order.group(1).split(), chain, "the order verify used")
    eq(head_of(out), (json.loads(last)["seq"], sha(last)), "head")

    # A missing rotation between two given ones breaks the chain.
    rc, out = run_verify(t, "audit.jsonl.5.gz", "audit.jsonl.3.gz", "audit.jsonl.4.gz",
                         "audit.jsonl.1", "audit.jsonl", cwd=logdir)
    eq(rc, 1, f"exit code without audit.jsonl.2.gz ({out.strip()[-300:]!r})")
    assert re.search(r"^BROKEN: audit\.jsonl\.1:1: ", out, re.M), out
    t.note(f"{total} records in 6 files")


def test_audit_verify_anchor_catches_cut(t):
    """13.4 Cutting the last 3 lines off a trail leaves a chain that
    verifies; `--anchor SEQ:HASH` with the head printed before the cut
    fails (exit 1). An anchor the trail holds passes and is located."""
    path, lines = trail_of_calls(t)
    rc, out = run_verify(t, path)
    eq(rc, 0, f"verify of the whole trail ({out!r})")
    seq, h = head_of(out)
    eq((seq, h), (len(lines), sha(lines[-1])), "head before the cut")
    rc, out = run_verify(t, path, "--anchor", f"{seq}:{h}")
    eq(rc, 0, f"verify --anchor of the whole trail ({out!r})")
    assert f"anchor: found at {path}:{len(lines)}" in out, out

    with open(path, "wb") as f:
        f.write(b"".join(x + b"\n" for x in lines[:-3]))
    rc, out = run_verify(t, path)
    eq(rc, 0, "verify of the cut trail without an anchor (the cut does not show)")
    eq(head_of(out), (len(lines) - 3, sha(lines[-4])), "head of the cut trail")
    rc, out = run_verify(t, path, "--anchor", f"{seq}:{h}")
    eq(rc, 1, f"exit code of --anchor after the cut ({out!r})")
    assert f"BROKEN: anchor {seq}:{h} is not in the trail" in out, out
    # An earlier anchor is still there; a right hash with a wrong seq is not.
    rc, out = run_verify(t, path, "--anchor", f"2:{sha(lines[1])}")
    eq(rc, 0, f"--anchor of line 2 ({out!r})")
    rc, out = run_verify(t, path, "--anchor", f"3:{sha(lines[1])}")
    eq(rc, 1, f"--anchor with the wrong seq ({out!r})")
    rc, out = run_verify(t, path, "--anchor", "2:xyz")
    eq(rc, 2, f"--anchor that is not SEQ:HASH ({out!r})")


def test_audit_verify_stdin_and_gzip(t):
    """13.3 `-` is standard input, plain or gzip; a .gz file is read
    compressed; stdin takes its place in the chain among named files."""
    path, lines = trail_of_calls(t)
    with open(path, "rb") as f:
        data = f.read()
    want = (json.loads(lines[-1])["seq"], sha(lines[-1]))
    rc, out = run_verify(t, "-", stdin=data)
    eq(rc, 0, f"verify - ({out!r})")
    eq(head_of(out), want, "head from stdin")
    rc, out = run_verify(t, "-", stdin=gzip.compress(data))
    eq(rc, 0, f"verify - with gzip on stdin ({out!r})")
    gz = path + ".gz"
    with open(gz, "wb") as f:
        f.write(gzip.compress(data))
    rc, out = run_verify(t, gz)
    eq(rc, 0, f"verify FILE.gz ({out!r})")
    assert out.startswith(f"OK: {len(lines)} records in 1 file(s)"), out
    # Split in two: the second half on stdin, given first.
    k = len(lines) // 2
    first = path + ".first"
    with open(first, "wb") as f:
        f.write(b"".join(x + b"\n" for x in lines[:k]))
    rc, out = run_verify(t, "-", first, stdin=b"".join(x + b"\n" for x in lines[k:]))
    eq(rc, 0, f"verify - FIRST ({out!r})")
    eq(head_of(out), want, "head of the split trail")
    assert f"order: {first} - (put in chain order" in out, out
    # A tampered stdin is broken (1), not unreadable.
    bad = data.replace(b'"search":"cust1"', b'"search":"cust9"', 1)
    assert bad != data
    eq(run_verify(t, "-", stdin=bad)[0], 1, "exit code of a tampered stdin")


def test_audit_verify_unreadable_exit_2(t):
    """13.3 A file that cannot be read exits 2 (not 1, which means
    tampering): a missing file, a directory, a damaged .gz."""
    path, lines = trail_of_calls(t, calls=1)
    missing = os.path.join(t.dir, "no-such.jsonl")
    rc, out = run_verify(t, path, missing)
    eq(rc, 2, f"exit code with a missing file ({out!r})")
    assert f"cannot read {missing}" in out, out
    eq(run_verify(t, t.dir)[0], 2, "exit code for a directory")
    with open(path, "rb") as f:
        data = gzip.compress(f.read())
    cut = path + ".cut.gz"
    with open(cut, "wb") as f:
        f.write(data[:len(data) - 12])
    rc, out = run_verify(t, cut)
    eq(rc, 2, f"exit code for a gzip file cut short ({out!r})")
    rc, out = run_verify(t)
    eq(rc, 2, "exit code without a file")


def readme_anchor_script():
    """The cron.daily script of README.md, as written there."""
    readme = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "README.md")
    with open(readme) as f:
        text = f.read()
    m = re.search(r"```sh\n(#!/bin/sh\n.*?whmgate-anchor.*?)```", text, re.S)
    assert m, "no #!/bin/sh anchor script in README.md"
    return m.group(1)


def test_audit_verify_readme_anchor_script(t):
    """13.4 The README's daily anchor script, run as written (its log
    directory, `whmgate`, `logger` and `mail` pointed at this test's),
    logs the head of a rotated trail; that head, given to --anchor,
    catches lines cut off the trail afterwards."""
    g, logdir = rotated_trail(t, 2)
    bindir = os.path.join(t.dir, "bin")
    os.makedirs(bindir)
    out_log, out_mail = os.path.join(t.dir, "logger.out"), os.path.join(t.dir, "mail.out")
    stubs = {"whmgate": f'exec {" ".join(shlex.quote(x) for x in [*t.session.wrapper, t.session.bin])} "$@"\n',
             "logger": f'printf "%s\\n" "$*" >> {shlex.quote(out_log)}\n',
             "mail": f'cat >> {shlex.quote(out_mail)}\n'}
    for name, body in stubs.items():
        p = os.path.join(bindir, name)
        with open(p, "w") as f:
            f.write("#!/bin/sh\n" + body)
        os.chmod(p, 0o755)
    script = readme_anchor_script().replace("/var/log/whmgate", logdir)
    r = subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                       env=dict(os.environ, PATH=bindir + ":" + os.environ["PATH"]),
                       timeout=60 * t.session.slow)
    eq(r.returncode, 0, f"exit code of the README script ({r.stderr.strip()})")
    with open(out_log) as f:
        logged = f.read().strip()
    m = re.fullmatch(r"-t whmgate-anchor head (\d+):([0-9a-f]{64})", logged)
    assert m, f"what the script logged: {logged!r}"
    last = file_lines(os.path.join(logdir, "audit.jsonl"))
    eq((int(m.group(1)), m.group(2)), (json.loads(last[-1])["seq"], sha(last[-1])),
       "the head it logged")
    with open(out_mail) as f:
        assert f.read().startswith("OK: "), "the verdict mailed"
    anchor = f"{m.group(1)}:{m.group(2)}"
    with open(os.path.join(logdir, "audit.jsonl"), "wb") as f:
        f.write(b"".join(x + b"\n" for x in last[:-2]))
    rc, out = run_verify(t, shell=f"WHMGATE audit verify audit.jsonl* --anchor {anchor}",
                         cwd=logdir)
    eq(rc, 1, f"--anchor with the logged head after a cut ({out!r})")
