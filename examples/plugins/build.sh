#!/usr/bin/env bash
# Builds the example plugins written in JavaScript and Python into components, each with its
# manifest beside it (the Rust ones are built by plugins/build.sh).
#
#   examples/plugins/build.sh             write examples/policies/<name>.{wasm,toml}
#   examples/plugins/build.sh --out DIR   write DIR/<name>.{wasm,toml}
#   examples/plugins/build.sh --check     build nothing; exit 1 naming each plugin whose
#                                         committed manifest's source-hash differs from its
#                                         sources (a stale .wasm)
#
# A JavaScript plugin is a directory examples/plugins/<name>/ with a package.json (its
# `description`, its `main` module, and a `portcullis` object with `kind`, `world`,
# `memory-mb` and `deadline-ms`) and build.mjs, which componentize-js runs. A Python plugin
# is a directory with a pyproject.toml (its `[project]` description and a `[tool.portcullis]`
# table with `kind`, `world`, `module`, `memory-mb` and `deadline-ms`).
#
# Tools, outside the repository: componentize-js from npm, as each package.json pins it,
# under ${PORTCULLIS_NPM_CACHE_DIR:-~/.cache/portcullis/npm}/<name>; componentize-py from
# PyPI, the version pinned below, in a virtual environment at
# ${PORTCULLIS_PYTHON_DIR:-~/.cache/portcullis/python}.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="$repo/examples/policies"
mode=build
componentize_py_version=0.25.1
# Every plugin here is built against contract 0.4.0 (sdk/wit/0.4.0), which the host keeps
# linking: policies of an older contract, in other languages, beside the Rust one built for
# the current contract by plugins/build.sh.
wit=sdk/wit/0.4.0
contract="portcullis:plugin@0.4.0"

usage() { sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while (($#)); do
    case "$1" in
        --out)
            [[ $# -ge 2 ]] || { echo "build.sh: --out needs a directory" >&2; exit 2; }
            out="$2"
            shift
            ;;
        --out=*) out="${1#--out=}" ;;
        --check) mode=check ;;
        -h | --help) usage; exit 0 ;;
        *) echo "build.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

# The plugins: each directory with a package.json (JavaScript) or a pyproject.toml (Python).
js=()
py=()
for dir in "$here"/*/; do
    name="$(basename "$dir")"
    if [[ -f $dir/package.json ]]; then
        js+=("$name")
    elif [[ -f $dir/pyproject.toml ]]; then
        py+=("$name")
    fi
done

# sha256 over a plugin's files, the contract's WIT and this script (it pins the tools): the
# sorted list of files (paths relative to the repo) with the sha256 of each.
source_hash() {
    (
        cd "$repo"
        {
            find "examples/plugins/$1" -type d \( -name node_modules -o -name __pycache__ \) -prune -o -type f -print
            find "$wit" -maxdepth 1 -type f -name '*.wit' -print
            echo examples/plugins/build.sh
        } | LC_ALL=C sort -u | tr '\n' '\0' | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
    )
}

if [[ $mode == check ]]; then
    stale=()
    for name in "${js[@]}" "${py[@]}"; do
        have="$(sed -n 's/^source-hash = "\(.*\)"$/\1/p' "$out/$name.toml" 2>/dev/null || true)"
        if [[ $have != "$(source_hash "$name")" || ! -f $out/$name.wasm ]]; then
            echo "stale: $name (${out#"$repo"/}/$name.toml does not match its sources)" >&2
            stale+=("$name")
        fi
    done
    if ((${#stale[@]})); then
        echo "build.sh --check: stale example plugin(s): ${stale[*]}; run examples/plugins/build.sh and commit its output" >&2
        exit 1
    fi
    echo "build.sh --check: every example plugin is up to date (${js[*]} ${py[*]})"
    exit 0
fi

mkdir -p "$out"
out="$(cd "$out" && pwd)"

# Writes OUT/NAME.toml: NAME KIND DESCRIPTION MEMORY-MB DEADLINE-MS.
manifest() {
    cat >"$out/$1.toml" <<EOT
name = "$1"
kind = "$2"
contract = "$contract"
description = "$3"
source-hash = "$(source_hash "$1")"

[limits]
memory-mb = $4
deadline-ms = $5

[grants]
env = []
EOT
    echo "build.sh: wrote $out/$1.wasm ($(wc -c <"$out/$1.wasm") bytes) and $1.toml" >&2
}

# A field of a JavaScript plugin's package.json: DIR DOTTED.KEY.
js_field() {
    node -e 'let v = require(process.argv[1]); for (const k of process.argv[2].split(".")) v = v[k];
        if (v === undefined) { console.error(`${process.argv[1]}: no ${process.argv[2]}`); process.exit(1); }
        console.log(v)' "$1/package.json" "$2"
}

# A field of a Python plugin's pyproject.toml: DIR DOTTED.KEY.
py_field() {
    "$venv/bin/python" -c 'import sys, tomllib
v = tomllib.load(open(sys.argv[1], "rb"))
for k in sys.argv[2].split("."):
    v = v[k]
print(v)' "$1/pyproject.toml" "$2"
}

for name in "${js[@]}"; do
    src="$here/$name"
    # componentize-js lives in a cache outside the repository (about 400 MB).
    tools="${PORTCULLIS_NPM_CACHE_DIR:-$HOME/.cache/portcullis/npm}/$name"
    mkdir -p "$tools"
    cp "$src/package.json" "$src/build.mjs" "$tools/"
    if [[ ! -d $tools/node_modules/@bytecodealliance/componentize-js ]] \
        || ! (cd "$tools" && npm ls --silent >/dev/null 2>&1); then
        (cd "$tools" && npm install --no-audit --no-fund --silent)
    fi
    node "$tools/build.mjs" "$src/$(js_field "$src" main)" "$repo/$wit" "$(js_field "$src" portcullis.world)" "$out/$name.wasm"
    manifest "$name" "$(js_field "$src" portcullis.kind)" "$(js_field "$src" description)" \
        "$(js_field "$src" portcullis.memory-mb)" "$(js_field "$src" portcullis.deadline-ms)"
done

if ((${#py[@]})); then
    venv="${PORTCULLIS_PYTHON_DIR:-$HOME/.cache/portcullis/python}"
    if [[ ! -x $venv/bin/componentize-py ]] \
        || [[ $("$venv/bin/python" -m pip show componentize-py 2>/dev/null | sed -n 's/^Version: //p') != "$componentize_py_version" ]]; then
        [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "componentize-py==$componentize_py_version"
    fi
fi
for name in "${py[@]}"; do
    src="$here/$name"
    # componentize-py generates the world's bindings (the module `wit_world`) and writes the
    # component; the cache of compiled modules it leaves in the sources goes.
    (cd "$src" && "$venv/bin/componentize-py" --quiet -d "$repo/$wit" -w "$(py_field "$src" tool.portcullis.world)" \
        componentize -p "$src" "$(py_field "$src" tool.portcullis.module)" -o "$out/$name.wasm")
    rm -rf "$src/__pycache__"
    manifest "$name" "$(py_field "$src" tool.portcullis.kind)" "$(py_field "$src" project.description)" \
        "$(py_field "$src" tool.portcullis.memory-mb)" "$(py_field "$src" tool.portcullis.deadline-ms)"
done
