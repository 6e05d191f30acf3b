#!/usr/bin/env bash
# `make run`: the demo of SPEC section 1. Creates demo keys, a WHM token and a
# self-signed TLS pair under conf/demo/ (once), writes conf/demo.json, starts
# the WHM stand-in on 127.0.0.1:2087 and whmgate on 127.0.0.1:8080, prints
# curl commands to paste, and stops both on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/whmgate}
D=conf/demo
mkdir -p "$D" logs
chmod 700 "$D"
umask 077

if [ ! -f "$D/tls.crt" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1,DNS:localhost \
    -keyout "$D/tls.key" -out "$D/tls.crt" 2>/dev/null
fi
if [ ! -f "$D/whm_token" ]; then
  # A WHM API token: 32 characters of [0-9A-Z].
  python3 -c 'import secrets, string; a = string.ascii_uppercase + string.digits; print("".join(secrets.choice(a) for _ in range(32)), end="")' >"$D/whm_token"
  printf 'root:%s\n' "$(cat "$D/whm_token")" >"$D/standin_tokens"
fi
for c in billing support; do
  [ -f "$D/$c.key" ] || "$BIN" keygen >"$D/$c.key"
done
BILLING_KEY=$(sed -n 1p "$D/billing.key")
SUPPORT_KEY=$(sed -n 1p "$D/support.key")
sed -e "s/@BILLING_HASH@/$(sed -n 2p "$D/billing.key")/" \
    -e "s/@SUPPORT_HASH@/$(sed -n 2p "$D/support.key")/" \
    conf/demo.template.json >conf/demo.json
umask 022

pids=()
cleanup() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped."
}
trap cleanup INT TERM EXIT

python3 tests/whm_standin.py --listen 127.0.0.1:2087 --cert "$D/tls.crt" \
  --key "$D/tls.key" --token-file "$D/standin_tokens" >"$D/standin.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q listening "$D/standin.out" 2>/dev/null && break; sleep 0.1; done
grep -q listening "$D/standin.out" || { cat "$D/standin.out"; exit 1; }

"$BIN" -c conf/demo.json &
pids+=($!)
# Ready when the port accepts (a bare connect leaves no audit record).
for _ in $(seq 100); do
  (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null && break; sleep 0.1
done

cat <<EOT

whmgate is running on http://127.0.0.1:8080 in front of the WHM stand-in on
https://127.0.0.1:2087. Paste these in another terminal:

# list accounts as the billing service (a seed-style call)
curl -H 'Authorization: Bearer $BILLING_KEY' 'http://127.0.0.1:8080/json-api/listaccts?api.version=1'

# create an account (the policy requires showpass=n and a lower-case user name)
curl -H 'Authorization: Bearer $BILLING_KEY' 'http://127.0.0.1:8080/json-api/createacct?api.version=1&username=demo1&domain=demo1.example&plan=basic&showpass=n'

# the same, in the form existing WHM clients send (whm <client>:<key>)
curl -H 'Authorization: whm billing:$BILLING_KEY' 'http://127.0.0.1:8080/json-api/listaccts?api.version=1&search=demo1&searchtype=user'

# refused: billing may not remove accounts (403 function_not_allowed)
curl -H 'Authorization: Bearer $BILLING_KEY' 'http://127.0.0.1:8080/json-api/removeacct?api.version=1&user=cust1'

# refused: support may only look (403)
curl -H 'Authorization: Bearer $SUPPORT_KEY' 'http://127.0.0.1:8080/json-api/suspendacct?api.version=1&user=cust1'

# then read the audit trail, and check its chain
tail -n 4 logs/audit.jsonl
build/whmgate audit verify logs/audit.jsonl

Ctrl-C stops both.
EOT
wait -n "${pids[@]}"
