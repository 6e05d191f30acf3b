"""The WHM client (issue "Upstream client"): libcurl connects and verifies,
whmgate writes the call and llhttp reads the answer. A pool bounded by
upstream.max_connections with waiting calls served in order, idle
connections closed after upstream.idle_timeout_ms, a call never sent twice,
and a malformed answer head refused before anything reaches the client."""
import threading
import time

from lib import check_error, eq

LIST = "/json-api/listaccts?api.version=1"


def records_of(g, rid):
    return g.records(rid)


def test_upstream_malformed_heads(t):
    """Each malformed answer head is a 502 to the client (nothing of it
    forwarded), with request and response records, and the call reached
    WHM once."""
    g = t.gate()
    key = t.key("billing")
    heads = {
        "two Content-Lengths": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        "Content-Length with chunked": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                       "Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        "not HTTP": "SSH-2.0-OpenSSH_9.2\r\n\r\n",
        "bad status code": "HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok",
        "bare LF": "HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
        "space before colon": "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
        "bad chunk size": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
        "nothing": "",
    }
    for what, raw in heads.items():
        t.standin.reset()
        t.standin.behave(raw_answer=raw)
        r = g.curl(LIST, auth=f"Bearer {key}")
        # A bad chunk after a valid head is a 502 too: the head waits
        # for the first piece of body before it goes out.
        rid = check_error(r, 502, "upstream_unavailable")
        assert b"SSH" not in r.body and b"x0" not in r.body, (what, r.body)
        recs = records_of(g, rid)
        eq([x["type"] for x in recs], ["request", "response"], f"{what}: records")
        eq(recs[1]["http"]["status"], 502, f"{what}: record status")
        assert recs[1]["upstream"]["error"], (what, recs[1]["upstream"])
        eq(len(t.standin.requests()), 1, f"{what}: calls WHM received")


def test_upstream_never_sent_twice(t):
    """WHM takes the call and closes without answering, on a fresh and on
    a pooled connection: 502 whose record says upstream_closed, and WHM
    received the call once (RFC 9110 9.2.2: WHM calls change state)."""
    g = t.gate()
    auth = f"Bearer {t.key('billing')}"
    t.standin.reset()
    t.standin.behave(close_without_answer=True)
    rid = check_error(g.curl(LIST, auth=auth), 502, "upstream_unavailable")
    eq(records_of(g, rid)[1]["upstream"]["error"], "upstream_closed", "record error (fresh)")
    eq(len(t.standin.requests()), 1, "calls WHM received (fresh connection)")
    t.standin.reset()
    eq(g.curl(LIST, auth=auth).status, 200, "a call that opens a pooled connection")
    t.standin.behave(close_without_answer=True)
    rid = check_error(g.curl(LIST, auth=auth), 502, "upstream_unavailable")
    eq(records_of(g, rid)[1]["upstream"]["error"], "upstream_closed", "record error (pooled)")
    reqs = t.standin.requests()
    eq(len(reqs), 2, "calls WHM received")
    eq(len({q["conn"] for q in reqs}), 1, "the second call went on the pooled connection")


def test_upstream_idle_timeout(t):
    """A pooled connection unused for upstream.idle_timeout_ms is closed:
    the next call opens another; inside the time it is reused."""
    conf = t.conf(idle_timeout_ms=300)
    g = t.gate(conf)
    auth = f"Bearer {t.key('billing')}"
    t.standin.reset()
    for _ in range(3):
        eq(g.curl(LIST, auth=auth).status, 200, "quick calls")
    time.sleep(0.8)
    eq(g.curl(LIST, auth=auth).status, 200, "the call after the idle time")
    conns = [q["conn"] for q in t.standin.requests()]
    eq(conns[0] == conns[1] == conns[2], True, f"quick calls share a connection {conns}")
    assert conns[3] != conns[2], f"a new connection after the idle time {conns}"


def test_upstream_pool_bound_and_queue(t):
    """upstream.max_connections 2 and 6 concurrent slow calls: WHM never
    sees more than 2 connections, and every call is answered (the waiting
    ones queued, not refused)."""
    conf = t.conf(max_connections=2)
    g = t.gate(conf)
    auth = f"Bearer {t.key('billing')}"
    t.standin.reset()
    t.standin.behave(delay_ms=300)
    out = []

    def call():
        out.append(g.curl(LIST, auth=auth).status)
    th = [threading.Thread(target=call) for _ in range(6)]
    for x in th:
        x.start()
    for x in th:
        x.join()
    eq(sorted(out), [200] * 6, "statuses")
    conns = {q["conn"] for q in t.standin.requests()}
    assert 1 <= len(conns) <= 2, f"connections WHM saw: {len(conns)}"
    t.note(f"{len(conns)} connections for 6 calls")
