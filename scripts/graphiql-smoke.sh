#!/usr/bin/env bash
# GraphiQL in a real browser, offline: starts `backchannel serve --demo` on
# loopback, opens the staff GraphiQL page in headless Chromium, pastes the
# demo owner's token in the headers editor, runs `{ me { … } }` and checks
# the answer shows in the page, then runs a `conversationEvents` subscription
# in GraphiQL and checks it shows the message a mutation sends; that every request the browser made went to
# the server's own origin, and that the console logged no error. Saves a
# screenshot (default /tmp/graphiql-smoke.png). Not part of `cargo test`.
#
# Needs: node + npm (puppeteer-core is installed into a cache directory),
# Debian's `chromium` (installed with apt-get when missing, as root).
#
#   scripts/graphiql-smoke.sh [screenshot.png]
#
# BACKCHANNEL_BIN picks the binary (default: target/debug/backchannel,
# built with cargo when missing).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
shot="${1:-/tmp/graphiql-smoke.png}"
bin="${BACKCHANNEL_BIN:-$root/target/debug/backchannel}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/backchannel-graphiql-smoke"

if [[ ! -x /usr/bin/chromium ]]; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
fi
if [[ ! -d "$cache/node_modules/puppeteer-core" ]]; then
  mkdir -p "$cache"
  (cd "$cache" && npm install --silent --no-audit --no-fund puppeteer-core@24 >/dev/null)
fi
if [[ ! -x "$bin" ]]; then
  (cd "$root" && cargo build -q -p backchannel-api --bin backchannel)
fi

work="$(mktemp -d)"
server=""
cleanup() {
  if [[ -n "$server" ]]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$bin" serve --demo --data-dir "$work/data" --addr "127.0.0.1:$port" >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$work/serve.log"; exit 1; }
  sleep 0.2
done
# The line after "  owner  Olivia … (id)" holds the owner's token.
token="$(awk '/^  owner /{getline; print $1; exit}' "$work/serve.log")"
[[ -n "$token" ]] || { echo "no owner token in the demo output" >&2; cat "$work/serve.log"; exit 1; }
conversation="$(awk '/^  customer /{print $3; exit}' "$work/serve.log")"

NODE_PATH="$cache/node_modules" node "$root/scripts/graphiql-smoke.mjs" \
  "http://127.0.0.1:$port/" "$token" "$shot" "$work/profile" "$conversation"
