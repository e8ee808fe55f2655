#!/usr/bin/env bash
# Builds the JavaScript test policy into a component with componentize-js (npm), and writes
# its manifest beside it. It is built for contract 0.3.0 (sdk/wit/0.3.0), which the host
# keeps linking: a scope policy of an older contract, in another language.
#
#   tests/plugins/scope-js/build.sh             write tests/policies/scope-js.{wasm,toml}
#   tests/plugins/scope-js/build.sh --out DIR   write DIR/scope-js.{wasm,toml}
#   tests/plugins/scope-js/build.sh --check     exit 1 when the committed manifest's
#                                               source-hash differs from the sources
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
name=scope-js
out="$repo/tests/policies"
mode=build
while (($#)); do
    case "$1" in
        --out) out="$2"; shift ;;
        --check) mode=check ;;
        *) echo "usage: build.sh [--out DIR | --check]" >&2; exit 2 ;;
    esac
    shift
done

# The contract it is built for, and the WIT of it.
wit=sdk/wit/0.3.0
contract="portcullis:plugin@0.3.0"

source_hash() {
    (cd "$repo" && printf '%s\0' tests/plugins/$name/{scope.js,build.mjs,package.json} "$wit"/*.wit \
        | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

if [[ $mode == check ]]; then
    have="$(sed -n 's/^source-hash = "\(.*\)"$/\1/p' "$out/$name.toml" 2>/dev/null || true)"
    want="$(source_hash)"
    if [[ $have != "$want" || ! -f $out/$name.wasm ]]; then
        echo "stale: $name (run tests/plugins/$name/build.sh and commit its output)" >&2
        exit 1
    fi
    echo "$name is up to date"
    exit 0
fi

# componentize-js lives in a cache outside the repository (about 400 MB).
tools="${PORTCULLIS_NPM_CACHE_DIR:-$HOME/.cache/portcullis/npm}/$name"
mkdir -p "$tools" "$out"
cp "$here/package.json" "$here/build.mjs" "$tools/"
if [[ ! -d $tools/node_modules/@bytecodealliance/componentize-js ]]; then
    (cd "$tools" && npm install --no-audit --no-fund --silent)
fi
node "$tools/build.mjs" "$here/scope.js" "$repo/$wit" scope-policy-plugin "$out/$name.wasm"
cat >"$out/$name.toml" <<EOT
name = "$name"
kind = "scope-policy"
contract = "$contract"
description = "A scope policy written in JavaScript: the requested scopes the client may have"
source-hash = "$(source_hash)"

[limits]
memory-mb = 128
deadline-ms = 500

[grants]
env = []
EOT
echo "build.sh: wrote $out/$name.wasm ($(wc -c <"$out/$name.wasm") bytes) and $name.toml" >&2
