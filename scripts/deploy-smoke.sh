#!/usr/bin/env bash
# The deployment of docs/deploy.md on loopback: nginx (Debian's package)
# terminating TLS with a self-signed certificate in front of two nodes, with
# docs/deploy/nginx.conf as it is committed (placeholders filled in). Checks
# through https: a GraphQL query with a token; the standard introspection,
# a query and a subscription over wss that receives the event of a mutation
# sent through the proxy (scripts/clients/graphql-js.mjs); and `replay-tool
# verify --server https://… --server-ca` reading the log through the proxy.
# Exits non-zero on the first failure; cleans up. Not part of `cargo test`.
#
# Needs (installed when missing, as root): nginx, openssl, node + npm (graphql,
# graphql-ws and ws go into a cache directory).
#
#   scripts/deploy-smoke.sh
#
# BACKCHANNEL_BIN / REPLAY_TOOL_BIN pick the binaries (default: target/debug,
# built with cargo when missing).
set -euo pipefail

# SHARED_STORE: the log both nodes serve, balanced by nginx. Unset: a
# throwaway PostgreSQL cluster started here (PostgreSQL 15's binaries, or
# BACKCHANNEL_PG_BIN). A postgres:// URL: that database. `sled`: each node has
# its own sled data dir and node B is nginx's `backup` (a sled store belongs
# to one process).
SHARED_STORE="${SHARED_STORE:-throwaway}"

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${BACKCHANNEL_BIN:-$root/target/debug/backchannel}"
tool="${REPLAY_TOOL_BIN:-$root/target/debug/replay-tool}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/backchannel-deploy-smoke"

missing=()
command -v nginx >/dev/null || missing+=(nginx)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if [[ ! -d "$cache/node_modules/graphql-ws" ]]; then
  mkdir -p "$cache"
  (cd "$cache" && npm install --silent --no-audit --no-fund graphql@16 graphql-ws@6 ws@8 >/dev/null)
fi
[[ -x "$bin" ]] || (cd "$root" && cargo build -q -p backchannel-api --bin backchannel)
[[ -x "$tool" ]] || (cd "$root" && cargo build -q -p backchannel-replay-tool --bin replay-tool)

work="$(mktemp -d)"
chmod 755 "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  declare -F stop_pg >/dev/null && stop_pg
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.log; do echo "--- $f" >&2; tail -n 20 "$f" >&2; done; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A self-signed certificate for 127.0.0.1 (CA:FALSE: rustls-based clients
# refuse a CA certificate as a server's own).
cat >"$work/cert.cnf" <<CNF
[req]
distinguished_name = dn
x509_extensions = ext
prompt = no
[dn]
CN = localhost
[ext]
subjectAltName = IP:127.0.0.1, DNS:localhost
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
CNF
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -config "$work/cert.cnf" -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

if [[ "$SHARED_STORE" == throwaway ]]; then
  pg_bin="${BACKCHANNEL_PG_BIN:-/usr/lib/postgresql/15/bin}"
  [[ -x "$pg_bin/initdb" ]] || fail "PostgreSQL server binaries not found in $pg_bin: install Debian's postgresql package"
  as_pg=()
  if [[ "$(id -u)" -eq 0 ]]; then as_pg=(runuser -u postgres --); fi
  mkdir -p "$work/pg"
  [[ "$(id -u)" -eq 0 ]] && chown postgres "$work/pg"
  pg_port="$(free_port)"
  "${as_pg[@]}" "$pg_bin/initdb" -D "$work/pg/data" -A trust -U postgres >"$work/pg-initdb.log" 2>&1 || fail "initdb"
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg/data" -l "$work/pg/server.log" -w \
    -o "-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1" start >/dev/null || fail "PostgreSQL did not start"
  stop_pg() { "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1 || true; }
  SHARED_STORE="postgres://postgres@127.0.0.1:$pg_port/postgres"
fi
[[ "$SHARED_STORE" == sled ]] && SHARED_STORE=""

# Two nodes sharing the token secret (a token minted by one is good on both).
secret="$(openssl rand -hex 32)"
port_a="$(free_port)"; port_b="$(free_port)"; port_tls="$(free_port)"
start_node() { # name port
  local store=(--data-dir "$work/$1")
  [[ -n "$SHARED_STORE" ]] && store+=(--store "$SHARED_STORE")
  BACKCHANNEL_SECRET="$secret" BACKCHANNEL_TRUSTED_PROXIES=127.0.0.1 "$bin" serve --demo "${store[@]}" --addr "127.0.0.1:$2" >"$work/node-$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 150); do
    curl -fsS "http://127.0.0.1:$2/readyz" >/dev/null 2>&1 && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || fail "node $1 exited"
    sleep 0.2
  done
  fail "node $1 not ready"
}
start_node a "$port_a"
start_node b "$port_b"
node_b="127.0.0.1:$port_b"
[[ -z "$SHARED_STORE" ]] && node_b="$node_b backup"

sed -e "s|@NODE_A@|127.0.0.1:$port_a|" -e "s|@NODE_B@|$node_b|" \
    -e "s|@LISTEN@|127.0.0.1:$port_tls|" -e "s|@SERVER_NAME@|localhost|" \
    -e "s|@CERT@|$work/cert.pem|" -e "s|@KEY@|$work/key.pem|" \
    "$root/docs/deploy/nginx.conf" >"$work/backchannel.conf"
grep -v '^#' "$work/backchannel.conf" | grep -q '@[A-Z_]*@' && fail "a placeholder was left in the nginx config"
cat >"$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events {}
http {
  access_log $work/nginx-access.log;
  client_body_temp_path $work/client_body;
  proxy_temp_path $work/proxy;
  fastcgi_temp_path $work/fastcgi;
  uwsgi_temp_path $work/uwsgi;
  scgi_temp_path $work/scgi;
  include $work/backchannel.conf;
}
NGINX
nginx -t -p "$work" -c "$work/nginx.conf" >"$work/nginx-test.log" 2>&1 || fail "nginx -t refused the config"
nginx -p "$work" -c "$work/nginx.conf" -g 'daemon off;' >"$work/nginx.log" 2>&1 &
pids+=($!)
base="https://127.0.0.1:$port_tls"
for _ in $(seq 1 50); do
  curl -fsS --cacert "$work/cert.pem" "$base/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done

token="$(awk '/^  owner /{getline; print $1; exit}' "$work/node-a.log")"
conversation="$(awk '/^  customer /{print $3; exit}' "$work/node-a.log")"
[[ -n "$token" && -n "$conversation" ]] || fail "no owner token or conversation in the demo output"

echo "== https query through nginx ($base)"
answer="$(curl -fsS --cacert "$work/cert.pem" "$base/graphql" -H "Authorization: Bearer $token" \
  -H 'content-type: application/json' -d '{"query":"{ me { name } }"}')" || fail "query failed"
echo "$answer"
[[ "$answer" == *'"Olivia Owner"'* ]] || fail "unexpected answer"

echo "== graphql-js + graphql-ws over https/wss through nginx"
NODE_EXTRA_CA_CERTS="$work/cert.pem" NODE_PATH="$cache/node_modules" \
  node "$root/scripts/clients/graphql-js.mjs" "$base" "$token" "$conversation" || fail "graphql-js client failed"

echo "== replay-tool verify --server $base --server-ca"
operator="$(BACKCHANNEL_SECRET="$secret" "$bin" token --operator --data-dir "$work/a" 2>/dev/null | tail -n 1)"
"$tool" verify --server "$base" --token "$operator" --server-ca "$work/cert.pem" --quiet 2>&1 || fail "replay-tool verify failed"

echo "deploy smoke: ok (nginx $(nginx -v 2>&1 | sed 's|.*/||'), nodes on :$port_a and :$port_b${SHARED_STORE:+ sharing $SHARED_STORE})"
