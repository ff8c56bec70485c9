#!/usr/bin/env bash
# Re-fetches the GraphiQL page's third-party assets from npm into
# api/assets/graphiql/vendor/, verbatim from the packages' tarballs
# (`npm pack`), and rewrites SHA256SUMS. `--check` fetches into a temporary
# directory and only compares, so CI or a reviewer can confirm the vendored
# files are the packages' own.
#
# To upgrade: change the versions below, run this script, update the file
# names in api/src/graphiql.rs and the table in api/assets/graphiql/README.md.
set -euo pipefail

GRAPHIQL=4.1.2   # the last GraphiQL that ships a UMD build (5.x is ESM + Monaco only)
REACT=18.3.1     # the last React with UMD builds (19 dropped them); GraphiQL 4 takes ^18 || ^19

root="$(cd "$(dirname "$0")/.." && pwd)"
vendor="$root/api/assets/graphiql/vendor"
check=false
[[ "${1:-}" == "--check" ]] && check=true

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "graphiql@$GRAPHIQL" "react@$REACT" "react-dom@$REACT" >/dev/null
for tarball in *.tgz; do
  mkdir "${tarball%.tgz}"
  tar xzf "$tarball" -C "${tarball%.tgz}"
done

out="$work/out"
mkdir "$out"
# <package dir>/<path in the package>  <vendored name>
while read -r from to; do
  cp "$work/$from" "$out/$to"
done <<LIST
graphiql-$GRAPHIQL/package/graphiql.min.js            graphiql-$GRAPHIQL.min.js
graphiql-$GRAPHIQL/package/graphiql.min.css           graphiql-$GRAPHIQL.min.css
react-$REACT/package/umd/react.production.min.js      react-$REACT.production.min.js
react-dom-$REACT/package/umd/react-dom.production.min.js react-dom-$REACT.production.min.js
LIST
(cd "$out" && sha256sum -- *.js *.css > SHA256SUMS)

if $check; then
  if diff -r "$out" "$vendor"; then
    echo "vendored GraphiQL assets match graphiql@$GRAPHIQL, react@$REACT, react-dom@$REACT"
  else
    echo "vendored GraphiQL assets differ from the packages" >&2
    exit 1
  fi
else
  rm -rf "$vendor"
  mkdir -p "$vendor"
  cp "$out"/* "$vendor"/
  cat "$vendor/SHA256SUMS"
fi
