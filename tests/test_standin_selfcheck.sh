#!/usr/bin/env bash
# Self-check of tests/whm_standin.py: starts it on a free port with a throwaway
# certificate and exercises every function and behaviour with curl.
# Usage: tests/test_standin_selfcheck.sh   (needs python3, openssl, curl)
set -u
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python3}
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

fails=0
ok()   { echo "ok   $1"; }
bad()  { echo "FAIL $1"; fails=$((fails + 1)); }
# check NAME PYTHON-EXPR: evaluates EXPR with `d` = JSON on stdin (b = raw bytes)
check() {
    if "$py" -c "import json,sys; b=sys.stdin.buffer.read(); d=json.loads(b or b'null')
sys.exit(0 if ($2) else 1)" 2>/dev/null; then ok "$1"; else bad "$1"; fi
}

cd "$tmp" || exit 1
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1,DNS:localhost \
    -keyout k.pem -out c.pem -days 2 2>/dev/null || { echo "openssl failed"; exit 1; }
TOKEN=ABCDEFGHIJKLMNOPQRSTUVWXYZ012345
echo "root:$TOKEN" > tokens
"$py" "$here/whm_standin.py" --listen 127.0.0.1:0 --cert c.pem --key k.pem \
    --token-file tokens --log log.jsonl > out.txt 2> err.txt &
pid=$!
for _ in $(seq 50); do grep -q listening out.txt 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/^whm-standin listening on 127.0.0.1:\([0-9]*\)$/\1/p' out.txt)
[ -n "$port" ] || { echo "stand-in did not start"; cat err.txt; exit 1; }
U=https://127.0.0.1:$port
C=(curl -sS --cacert c.pem)
W=(curl -sS --cacert c.pem -H "Authorization: whm root:$TOKEN")
api() { "${W[@]}" "$U/json-api/$1"; }          # api 'fn?api.version=1&...'
behave() { "${C[@]}" -X POST "$U/__test/reset" >/dev/null
           [ -n "${1:-}" ] && "${C[@]}" -X POST -d "$1" "$U/__test/behave" >/dev/null; }

# --- authentication, API 0, headers
[ "$("${C[@]}" "$U/__test/health")" = ok ] && ok health || bad health
"${C[@]}" -o /dev/null -w '%{http_code}' "$U/json-api/version?api.version=1" | grep -qx 403 \
    && ok "no token -> 403" || bad "no token -> 403"
"${C[@]}" -H 'Authorization: whm root:WRONG' "$U/json-api/version?api.version=1" \
    | check "bad token -> legacy body" 'd["cpanelresult"]["error"] == "Access denied"'
"${C[@]}" -H "Authorization: WHM root:$TOKEN" "$U/json-api/version?api.version=1" \
    | check "WHM scheme upper case" 'd["data"]["version"] == "11.120.0.16"'
api version | check "API 0 noticed" '"api.version 0" in d["error"]'
h=$("${W[@]}" -D - -o /dev/null "$U/json-api/gethostname?api.version=1")
echo "$h" | grep -qi '^content-type: application/json; charset="utf-8"' && echo "$h" \
    | grep -qi '^set-cookie: cpsession=should-not-leak' && echo "$h" | grep -qi '^x-standin: 1' \
    && ok "response headers" || bad "response headers"

# --- account functions
api 'gethostname?api.version=1' | check gethostname 'd["data"]["hostname"] == "whm.test"'
api 'listaccts?api.version=1' | check "listaccts seeded" \
    '[a["user"] for a in d["data"]["acct"]] == ["cust1","cust2"] and list(d) == ["data","metadata"]'
api 'listaccts?api.version=1&search=cust2.ex&searchtype=domain' | check "listaccts search" \
    '[a["plan"] for a in d["data"]["acct"]] == ["pro"]'
api 'accountsummary?api.version=1&user=nobody' | check "accountsummary missing" \
    'd["metadata"]["result"] == 0 and d["metadata"]["reason"] == "Account does not exist."'
"${W[@]}" -d api.version=1 -d username=newu -d domain=newu.example -d plan=pro \
    -d password=Secret1 "$U/json-api/createacct" | check createacct \
    'd["metadata"]["result"] == 1 and "PassWord: Secret1" in d["metadata"]["output"]["raw"]'
"${W[@]}" -d api.version=1 -d username=newv -d domain=newv.example -d password=Secret1 \
    -d showpass=n "$U/json-api/createacct" | check "createacct showpass=n" \
    '"Secret1" not in d["metadata"]["output"]["raw"]'
api 'createacct?api.version=1&username=newu&domain=x.example' | check "createacct taken" \
    'd["metadata"]["reason"] == "Sorry, that username is taken."'
api 'accountsummary?api.version=1&domain=newu.example' | check "accountsummary new" \
    'd["data"]["acct"][0]["plan"] == "pro"'
api 'removeacct?api.version=1&username=newv' | check "removeacct username" 'd["metadata"]["result"] == 1'
api 'removeacct?api.version=1&user=newv' | check "removeacct missing" 'd["metadata"]["result"] == 0'
api 'suspendacct?api.version=1&user=cust1&reason=unpaid' | check suspendacct 'd["metadata"]["result"] == 1'
api 'suspendacct?api.version=1&user=cust1' | check "suspendacct again" \
    'd["metadata"]["reason"] == "Failed to suspend account."'
api 'listsuspended?api.version=1' | check listsuspended \
    '[(a["user"], a["reason"]) for a in d["data"]["account"]] == [("cust1", "unpaid")]'
api 'unsuspendacct?api.version=1&user=cust1' | check unsuspendacct 'd["metadata"]["result"] == 1'
api 'nosuch?api.version=1' | check "unknown function" \
    'd["metadata"]["reason"] == "Unknown app (nosuch) requested for this version (1) of the API."'

# --- uapi_cpanel and batch
api 'uapi_cpanel?api.version=1&cpanel.user=cust1&cpanel.module=Email&cpanel.function=list_pops' \
    | check uapi_cpanel 'd["data"]["uapi"]["data"] == [{"email": "info@cust1.example"}]'
api 'uapi_cpanel?api.version=1&cpanel.user=cust1&cpanel.module=Email&cpanel.function=nope' \
    | check "uapi_cpanel unknown" 'd["metadata"]["result"] == 1 and d["data"]["uapi"]["status"] == 0
        and d["data"]["uapi"]["errors"]'
# --- cpanel: cpsrvd's shapes, no WHM metadata
cp='cpanel?api.version=1&cpanel_jsonapi_module=Email'
api "$cp&cpanel_jsonapi_user=cust1&cpanel_jsonapi_apiversion=2&cpanel_jsonapi_func=listpops" \
    | check "cpanel API 2" 'd["cpanelresult"]["event"]["result"] == 1 and "metadata" not in d
        and d["cpanelresult"]["data"][0]["email"] == "info@cust1.example"'
api "$cp&cpanel_jsonapi_user=cust1&cpanel_jsonapi_apiversion=2&cpanel_jsonapi_func=addpop&email=info" \
    | check "cpanel API 2 failed item" 'd["cpanelresult"]["data"][0]["result"] == 0
        and d["cpanelresult"]["error"] == d["cpanelresult"]["data"][0]["reason"]'
api "$cp&cpanel_jsonapi_user=zz&cpanel_jsonapi_apiversion=2&cpanel_jsonapi_func=listpops" \
    | check "cpanel API 2 bad user" 'd["cpanelresult"]["data"]["result"] == "0" and d["cpanelresult"]["error"]'
api "$cp&user=cust2&cpanel_jsonapi_apiversion=1&cpanel_jsonapi_func=getdiskusage" \
    | check "cpanel API 1 (user=)" 'd["data"] == {"result": "0"} and d["event"] == {"result": 1}'
api "$cp&cpanel_jsonapi_user=zz&cpanel_jsonapi_apiversion=1&cpanel_jsonapi_func=listpops" \
    | check "cpanel API 1 bad user" 'd["data"]["result"] == "0" and d["error"] and "cpanelresult" not in d'
api "$cp&cpanel_jsonapi_user=cust1&cpanel_jsonapi_apiversion=3&cpanel_jsonapi_func=nope" \
    | check "cpanel UAPI unknown" 'd["apiversion"] == 3 and d["result"]["status"] == 0 and d["result"]["errors"]'
api 'batch?api.version=1&command-0=version&command-1=listaccts%3Fsearch%3Dcust1%26searchtype%3Duser&command-2=batch' \
    | check batch '[r["metadata"]["result"] for r in d["data"]["result"]] == [1, 1, 0]
        and len(d["data"]["result"][1]["data"]["acct"]) == 1'
api 'batch?api.version=1&abort_on_error=1&command=accountsummary%3Fuser%3Dzz&command=version' \
    | check "batch abort_on_error" 'len(d["data"]["result"]) == 1 and d["metadata"]["result"] == 0'

# --- recording
behave
"${W[@]}" -H 'X-Test:  v' -d 'user=b&x=' "$U/json-api/listaccts?api.version=1&user=a" >/dev/null
"${C[@]}" "$U/__test/requests" | check "recorded request" 'len(d) == 1 and d[0]["seq"] == 1
    and d[0]["params"] == {"api.version": "1", "user": "a", "user-0": "b", "x": ""}
    and ["X-Test", "v"] in d[0]["headers"] and d[0]["body"] == "user=b&x="
    and d[0]["query"] == "api.version=1&user=a" and d[0]["path"] == "/json-api/listaccts"'
tail -n 1 log.jsonl | check "log file" 'd["seq"] == 1 and d["method"] == "POST"'

# --- behaviours
behave '{"metadata_first": true}'
api 'version?api.version=1' | check metadata_first 'list(d) == ["metadata", "data"]'
behave '{"not_json": true, "status": 502}'
r=$("${W[@]}" -w ' %{http_code}' "$U/json-api/version?api.version=1")
[ "$r" = "<html>cPanel login</html> 502" ] && ok "not_json + status" || bad "not_json + status: $r"
behave '{"delay_ms": 700}'
t=$("${W[@]}" -o /dev/null -w '%{time_starttransfer}' "$U/json-api/version?api.version=1")
"$py" -c "import sys; sys.exit(0 if $t >= 0.7 else 1)" && ok "delay_ms ($t s)" || bad "delay_ms ($t s)"
behave '{"reset_after_head": true}'
"${W[@]}" -D head.txt -o /dev/null "$U/json-api/version?api.version=1" 2>/dev/null; rc=$?
[ $rc -ne 0 ] && grep -q '200 OK' head.txt && ok "reset_after_head (curl rc $rc)" || bad reset_after_head
behave '{"close_without_answer": true}'
"${W[@]}" "$U/json-api/version?api.version=1" 2>/dev/null; rc=$?
[ $rc -eq 52 ] && ok "close_without_answer" || bad "close_without_answer (rc $rc)"
behave '{"body_bytes": 200000, "chunked": true, "drip_ms": 100}'
api 'listaccts?api.version=1' | check "body_bytes chunked + drip" 'len(b) == 200000
    and d["metadata"]["result"] == 1'
behave '{"body_bytes": 120000000}'
( while :; do awk '/VmRSS/ {print $2}' "/proc/$pid/status"; sleep 0.05; done ) > rss.txt &
sampler=$!
n=$(api 'listaccts?api.version=1' | wc -c)
kill "$sampler"; wait "$sampler" 2>/dev/null; r=$(sort -n rss.txt | tail -n 1)
[ "$n" -eq 120000000 ] && [ "$r" -lt 100000 ] && ok "120 MB body, peak RSS ${r} kB" || bad "120 MB body: $n bytes, RSS $r kB"

# --- keep-alive: 200 sequential requests on one connection
behave
urls=(); for i in $(seq 200); do urls+=("$U/json-api/version?api.version=1&i=$i"); done
"${W[@]}" "${urls[@]}" > /dev/null
"${C[@]}" "$U/__test/requests" | check "200 keep-alive requests on one connection" \
    'len(d) == 200 and len({r["conn"] for r in d}) == 1'
"${C[@]}" "$U/__test/health" | grep -qx ok && ok "still healthy" || bad "still healthy"

kill -TERM "$pid"; wait "$pid"; rc=$?; pid=
[ $rc -eq 0 ] && ok "SIGTERM exit 0" || bad "SIGTERM exit $rc"
[ -s err.txt ] && { echo "stderr:"; cat err.txt; }
echo "$fails failure(s)"
[ $fails -eq 0 ]
