#!/usr/bin/env python3
"""Instructions per call, counted by callgrind (repeatable whatever else the
machine runs), for one or more whmgate binaries side by side.

  tests/bench/callgrind.py BIN [BIN...]     (make bench-callgrind)

Each binary runs under `valgrind --tool=callgrind` in front of nginx serving
the small WHM-shaped listaccts answer over TLS (conf/bench/), audit fsync
"never", and is called N1 then, in a second run, N2 times on one keep-alive
connection. (I2 - I1) / (N2 - N1) is the cost of one call with start-up and
shutdown subtracted. Allocations per call are counted the same way from
callgrind's call counts of malloc, calloc and realloc. CG_KEEP=FILE keeps
the last run's callgrind output (callgrind_annotate FILE reads it); CG_N1
and CG_N2 set the numbers of calls."""
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
N1, N2 = int(os.environ.get("CG_N1", "300")), int(os.environ.get("CG_N2", "900"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc, what, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} not listening")


def ossl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def setup(d):
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ossl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=cg CA",
         "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.crt")
    ossl("req", *ec, "-subj", "/CN=127.0.0.1", "-keyout", f"{d}/server.key",
         "-out", f"{d}/server.csr")
    with open(f"{d}/ext", "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    ossl("x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.crt", "-CAkey",
         f"{d}/ca.key", "-CAcreateserial", "-days", "2", "-extfile", f"{d}/ext",
         "-out", f"{d}/server.crt")
    token = "A" * 32
    fd = os.open(f"{d}/whm_token", os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, token.encode())
    os.close(fd)
    os.makedirs(f"{d}/www/json-api")
    os.makedirs(f"{d}/tmp")
    subprocess.run([sys.executable, f"{ROOT}/tests/bench/helper.py", "bodies", f"{d}/www"],
                   check=True)
    port = free_port()
    with open(f"{ROOT}/conf/bench/upstream-nginx.conf.in") as f:
        text = f.read()
    for k, v in {"@DIR@": d, "@UP_PORT@": str(port), "@TOKEN@": token,
                 "@UP_WORKERS@": "1",
                 "@USER@": "user root root;" if os.getuid() == 0 else ""}.items():
        text = text.replace(k, v)
    with open(f"{d}/nginx.conf", "w") as f:
        f.write(text)
    ngx = subprocess.Popen(["nginx", "-p", d, "-e", f"{d}/upstream.error.log", "-c",
                            f"{d}/nginx.conf"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    wait_port(port, ngx, "nginx")
    return ngx, port


def gate_conf(d, up_port, key):
    port = free_port()
    conf = ('{"listen": ["127.0.0.1:%d"], "instance": "cg",'
            ' "upstream": {"url": "https://127.0.0.1:%d", "ca_file": "%s/ca.crt"},'
            ' "audit": {"file": "%s/audit-%d.jsonl", "fsync": "never"},'
            ' "clients": {"bench": {"keys": ["sha256:%s"], "whm_user": "root",'
            ' "whm_token": {"file": "%s/whm_token"}, "allow": {"listaccts": {}}}}}'
            % (port, up_port, d, d, port, hashlib.sha256(key.encode()).hexdigest(), d))
    path = f"{d}/gate-{port}.json"
    with open(path, "w") as f:
        f.write(conf)
    return path, port


def calls(port, key, n):
    s = socket.create_connection(("127.0.0.1", port), timeout=120)
    req = (f"GET /json-api/listaccts?api.version=1 HTTP/1.1\r\nHost: x\r\n"
           f"Authorization: Bearer {key}\r\n\r\n").encode()
    buf = b""
    for _ in range(n):
        s.sendall(req)
        while b"\r\n\r\n" not in buf:
            buf += s.recv(65536)
        head, _, buf = buf.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head[:80]
        m = re.search(rb"(?i)content-length: *(\d+)", head)
        need = int(m.group(1))
        while len(buf) < need:
            buf += s.recv(65536)
        buf = buf[need:]
    s.close()


def one_run(binary, d, up_port, key, n):
    conf, port = gate_conf(d, up_port, key)
    out = f"{d}/cg-{port}.out"
    p = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                          binary, "-c", conf], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        wait_port(port, p, "whmgate")
        calls(port, key, 5)              # connections made, caches warm
        calls(port, key, n)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=120)
    if os.environ.get("CG_KEEP"):
        shutil.copy(out, os.environ["CG_KEEP"])   # for callgrind_annotate
    total = allocs = 0
    fn = None
    with open(out) as f:
        for line in f:
            if line.startswith("summary:"):
                total = int(line.split()[1])
    # Allocation calls: callgrind_annotate's inclusive view is costly to
    # parse; count the calls= lines into malloc/calloc/realloc instead.
    with open(out) as f:
        names = {}
        for line in f:
            m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line)
            if m:
                if m.group(2):
                    names[m.group(1)] = m.group(2).strip()
                fn = names.get(m.group(1))
                continue
            if line.startswith("calls=") and fn in ("malloc", "calloc", "realloc"):
                allocs += int(line.split("=")[1].split()[0])
    return total, allocs


def main():
    bins = [os.path.abspath(b) for b in sys.argv[1:]] or [f"{ROOT}/build/whmgate"]
    for tool in ("valgrind", "nginx", "openssl"):
        if not shutil.which(tool):
            sys.exit(f"callgrind.py: {tool} is missing")
    d = tempfile.mkdtemp(prefix="whmgate-cg-")
    key = "whmg_" + "k" * 43
    ngx, up_port = setup(d)
    try:
        print(f"| binary | instructions/call | allocation calls/call |")
        print(f"|---|---|---|")
        for b in bins:
            i1, a1 = one_run(b, d, up_port, key, N1)
            i2, a2 = one_run(b, d, up_port, key, N2)
            print(f"| {b} | {(i2 - i1) / (N2 - N1):,.0f} | {(a2 - a1) / (N2 - N1):.1f} |",
                  flush=True)
    finally:
        ngx.terminate()
        ngx.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
