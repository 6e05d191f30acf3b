#!/usr/bin/env python3
"""Runs README.md's production walk-through line by line, for
test_rollout.py's test_rollout_walkthrough. Must run as root inside
`unshare --mount --net --propagation private`: it puts a copy of /etc and
empty file systems over /usr/local, /var/log, /var/lib, /lib/systemd/system
and /usr/lib/sysusers.d, so `make install` and everything after it touch
only this namespace; the loopback of its own network namespace carries
whmgate on the README's ports and a WHM stand-in on 127.0.0.1:2087.

  walkthrough.py --repo DIR --bin WHMGATE --work DIR --cert C --key K --ca CA --token T

Prints one JSON object on its last line: each step with its exit code and
output, HAProxy's view of the server, what the stand-in received, the
audit files, the daemon's exit code. Stops at the first failing step.
"""
import argparse
import glob
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def readme_blocks(path):
    with open(path) as f:
        text = f.read()
    m = re.search(r"<!-- walkthrough -->(.*?)<!-- /walkthrough -->", text, re.S)
    if not m:
        raise SystemExit("README.md has no walk-through markers")
    blocks = re.findall(r"```(\w+)\n(.*?)```", m.group(1), re.S)
    steps = []
    for lang, body in blocks:
        if lang != "sh":
            continue
        cur = ""
        for line in body.splitlines():
            if line.strip().startswith("#") and not cur:
                continue
            cur += line[:-1] + " " if line.endswith("\\") else line
            if not line.endswith("\\"):
                if cur.strip():
                    steps.append(cur.strip())
                cur = ""
    hap = [b for lang, b in blocks if lang == "haproxy"]
    return steps, hap[0] if hap else None


def isolate(work):
    sh(["ip", "link", "set", "lo", "up"])
    etc = os.path.join(work, "etc")
    sh(["cp", "-a", "/etc", etc])
    sh(["mount", "--bind", etc, "/etc"])
    for d in ("/usr/local", "/var/log", "/var/lib", "/lib/systemd/system",
              "/usr/lib/sysusers.d"):
        os.makedirs(d, exist_ok=True)
        sh(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", d])
    os.makedirs("/var/lib/logrotate")
    bindir = os.path.join(work, "bin")
    os.makedirs(bindir)
    for name in ("systemctl", "journalctl"):
        os.symlink(os.path.join(HERE, "fake_systemd.py"), os.path.join(bindir, name))
    return bindir


def start_standin(a, work):
    tokens = os.path.join(work, "standin_tokens")
    with open(tokens, "w") as f:
        f.write(f"root:{a.token}\n")
    p = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(HERE), "whm_standin.py"),
                          "--listen", "127.0.0.1:2087", "--cert", a.cert, "--key", a.key,
                          "--token-file", tokens], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    line = b""
    deadline = time.monotonic() + 20
    while not line.endswith(b"\n") and time.monotonic() < deadline:
        r, _, _ = select.select([p.stdout], [], [], 1)
        if r:
            b = os.read(p.stdout.fileno(), 1)
            if not b:
                break
            line += b
    if b"listening" not in line:
        raise SystemExit(f"stand-in did not start: {line!r}")
    return p


def standin_requests(ca):
    c = http.client.HTTPSConnection("127.0.0.1", 2087, timeout=10,
                                    context=ssl.create_default_context(cafile=ca))
    c.request("GET", "/__test/requests")
    return json.loads(c.getresponse().read())


def haproxy_check(work, snippet):
    sock = os.path.join(work, "haproxy.sock")
    cfg = os.path.join(work, "haproxy.cfg")
    with open(cfg, "w") as f:
        f.write(f"global\n    stats socket {sock} level admin\n\n"
                "defaults\n    mode http\n    timeout connect 2s\n"
                "    timeout client 10s\n    timeout server 10s\n    timeout check 2s\n\n"
                + snippet)
    p = subprocess.Popen(["haproxy", "-f", cfg, "-db"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    status, last = None, {}
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            time.sleep(0.3)
            if p.poll() is not None:
                return {"status": None, "error": p.stderr.read().decode()[-400:]}
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(sock)
                s.sendall(b"show stat\n")
                out = b""
                while True:
                    b = s.recv(65536)
                    if not b:
                        break
                    out += b
                s.close()
            except OSError:
                continue
            rows = out.decode().splitlines()
            head = rows[0].lstrip("# ").split(",")
            for r in rows[1:]:
                cols = dict(zip(head, r.split(",")))
                if cols.get("svname") == "gw1":
                    status = cols.get("status")
                    last = {k: cols.get(k) for k in ("check_status", "check_code")}
            if status == "UP":
                break
        return dict(last, status=status)
    finally:
        p.terminate()
        p.wait(timeout=10)


def main():
    ap = argparse.ArgumentParser()
    for k in ("repo", "bin", "work", "cert", "key", "ca", "token"):
        ap.add_argument("--" + k, required=True)
    a = ap.parse_args()
    steps, hap = readme_blocks(os.path.join(a.repo, "README.md"))
    work = a.work
    bindir = isolate(work)
    shutil.copy(a.ca, os.path.join(work, "whm.crt"))
    standin = start_standin(a, work)
    state = os.path.join(work, "systemd")
    env = dict(os.environ, PATH=f"{bindir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
               "/sbin:/bin", WHM="127.0.0.1", WHM_TOKEN=a.token, FAKE_SYSTEMD=state)
    out = {"steps": [], "haproxy": None}
    try:
        for step in steps:
            cmd, cwd = step, work
            if step.startswith("make install"):
                # The binary under test, never rebuilt here.
                cmd = (f"{step} BUILD={os.path.dirname(a.bin)} -o {a.bin}")
                cwd = a.repo
            r = subprocess.run(["bash", "-c", cmd], cwd=cwd, env=env, capture_output=True,
                               text=True, errors="replace", timeout=120)
            out["steps"].append({"step": step, "rc": r.returncode, "out": r.stdout[-2000:],
                                 "err": r.stderr[-2000:]})
            if r.returncode != 0:
                break
        else:
            if hap:
                out["haproxy"] = haproxy_check(work, hap)
            r = subprocess.run(["bash", "-c", "systemctl stop whmgate"], cwd=work, env=env,
                               capture_output=True, text=True, timeout=60)
            out["stop"] = r.returncode
        out["standin"] = [{"path": q.get("path"), "auth": [v for k, v in q["headers"]
                                                           if k.lower() == "authorization"]}
                          for q in standin_requests(a.ca)]
        out["audit"] = {}
        for f in sorted(glob.glob("/var/log/whmgate/audit.jsonl*")):
            st = os.stat(f)
            with open(f) as fh:
                recs = [json.loads(l) for l in fh if l.strip()]
            out["audit"][os.path.basename(f)] = {
                "uid": st.st_uid, "mode": st.st_mode & 0o777,
                "events": [r.get("event") or r.get("type") for r in recs]}
        try:
            import pwd
            out["whmgate_uid"] = pwd.getpwnam("whmgate").pw_uid
        except KeyError:
            out["whmgate_uid"] = None
        try:
            with open(os.path.join(state, "notify")) as f:
                out["notify"] = f.read().splitlines()
        except FileNotFoundError:
            out["notify"] = []
    finally:
        pid = None
        try:
            with open(os.path.join(state, "mainpid")) as f:
                pid = int(f.read())
        except (FileNotFoundError, ValueError):
            pass
        out["daemon_exit"] = None
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
                for _ in range(300):
                    os.kill(pid, 0)
                    time.sleep(0.05)
                os.kill(pid, signal.SIGKILL)
                out["daemon_exit"] = "killed"
            except ProcessLookupError:
                out["daemon_exit"] = "exited"
        standin.terminate()
        standin.wait(timeout=10)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
