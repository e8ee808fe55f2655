#!/usr/bin/env bash
# Builds every plugin under plugins/ into policies/<name>.wasm (a component) and
# policies/<name>.toml (its manifest).
#
#   plugins/build.sh             build every plugin into policies/, every test plugin
#                                (tests/plugins/*) into tests/policies/ and every example
#                                plugin (examples/plugins/*) into examples/policies/
#   plugins/build.sh --out DIR   build the plugins into DIR, the test plugins into
#                                DIR/fixtures (or --fixtures-out DIR2) and the example
#                                plugins into DIR/examples
#   plugins/build.sh --check     build nothing; exit 1 naming each plugin whose manifest's
#                                source-hash differs from its sources (a stale .wasm)
#
# A plugin is a directory plugins/<name>/ (a member of the plugins/ workspace) or
# tests/plugins/<name>/ or examples/plugins/<name>/ (a standalone crate, built from a copy
# that gets its own [workspace]) whose Cargo.toml has a [package.metadata.portcullis] table
# with `kind`, `memory-mb` and `deadline-ms`; the manifest's description is the package's
# `description`; a grants.toml beside the Cargo.toml is appended to the manifest's [grants]
# table as is (its keys, `http = [...]`, `kv = true`), and a config.toml after it (it holds
# the manifest's [config] table). A member of plugins/ without that table is a library the
# plugins share (consent-pages): built into those that depend on it, and part of every
# plugin's source hash.
#
# Toolchain: a rustup toolchain with the wasm32-unknown-unknown target when it is
# installed; otherwise Debian's rustc (rustc-web + rust-web-src, installed here when
# missing and running as root) building std from source, linked with rustup's rust-lld.
#
# Environment: PORTCULLIS_WASM_TARGET_DIR (default ~/.cache/portcullis/wasm-target) for
# the plugins, CARGO_TARGET_DIR (default ~/.cache/portcullis/target) for
# portcullis-componentize.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
out_dir=""
fixtures_dir=""
mode=build

usage() { sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while (($#)); do
    case "$1" in
        --check) mode=check ;;
        --out)
            [[ $# -ge 2 ]] || { echo "build.sh: --out needs a directory" >&2; exit 2; }
            out_dir="$2"
            shift
            ;;
        --out=*) out_dir="${1#--out=}" ;;
        --fixtures-out)
            [[ $# -ge 2 ]] || { echo "build.sh: --fixtures-out needs a directory" >&2; exit 2; }
            fixtures_dir="$2"
            shift
            ;;
        --fixtures-out=*) fixtures_dir="${1#--fixtures-out=}" ;;
        -h | --help) usage; exit 0 ;;
        *) echo "build.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
if [[ -z $out_dir ]]; then
    out_dir="$repo/policies"
    fixtures_dir="${fixtures_dir:-$repo/tests/policies}"
    examples_dir="$repo/examples/policies"
else
    fixtures_dir="${fixtures_dir:-$out_dir/fixtures}"
    examples_dir="$out_dir/examples"
fi
mkdir -p "$out_dir" "$fixtures_dir"
out_dir="$(cd "$out_dir" && pwd)"
fixtures_dir="$(cd "$fixtures_dir" && pwd)"

mkdir -p "$examples_dir"

# The plugins (plugins/<name>), and the standalone ones: the test plugins
# (tests/plugins/<name>) and the example plugins (examples/plugins/<name>), sorted.
plugins=()
fixtures=()
libraries=()
declare -A src_dirs dest_dirs
for manifest in "$here"/*/Cargo.toml; do
    name="$(basename "$(dirname "$manifest")")"
    if ! grep -qx '\[package\.metadata\.portcullis\]' "$manifest"; then
        libraries+=("plugins/$name")
        continue
    fi
    plugins+=("$name")
    src_dirs[$name]="plugins/$name"
    dest_dirs[$name]="$out_dir"
done
for manifest in "$repo"/tests/plugins/*/Cargo.toml "$repo"/examples/plugins/*/Cargo.toml; do
    [[ -f $manifest ]] || continue
    name="$(basename "$(dirname "$manifest")")"
    fixtures+=("$name")
    src_dirs[$name]="${manifest#"$repo"/}"
    src_dirs[$name]="${src_dirs[$name]%/Cargo.toml}"
    case "${src_dirs[$name]}" in
        tests/*) dest_dirs[$name]="$fixtures_dir" ;;
        *) dest_dirs[$name]="$examples_dir" ;;
    esac
done
((${#plugins[@]})) || { echo "build.sh: no plugin under $here" >&2; exit 1; }

# Where a plugin's sources are (relative to the repo) and where its outputs go.
src_of() { echo "${src_dirs[$1]}"; }
dest_of() { echo "${dest_dirs[$1]}"; }

# The value of KEY in [SECTION] of a TOML file, quotes removed (simple `key = value` lines only).
toml_get() {
    local file="$1" section="$2" key="$3"
    awk -v section="[$section]" -v key="$key" '
        BEGIN { in_section = (section == "[]") }
        /^[[:space:]]*\[/ { in_section = ($0 == section); next }
        in_section {
            line = $0
            sub(/^[[:space:]]+/, "", line)
            if (index(line, key) == 1) {
                rest = substr(line, length(key) + 1)
                if (rest ~ /^[[:space:]]*=/) {
                    sub(/^[[:space:]]*=[[:space:]]*/, "", rest)
                    sub(/[[:space:]]+#.*$/, "", rest)
                    if (rest ~ /^".*"$/) rest = substr(rest, 2, length(rest) - 2)
                    print rest
                    exit
                }
            }
        }' "$file"
}

# sha256 over a plugin's sources, the SDK's, the shared libraries', the WIT contract, the
# plugins' lock file and this script (its flags shape the output):
# the sorted list of files (paths relative to the repo) with the sha256 of each.
source_hash() {
    local src
    src="$(src_of "$1")"
    (
        cd "$repo"
        {
            find "$src" "sdk/rust" "${libraries[@]}" -type d \( -name target -o -name .git \) -prune -o -type f \
                ! -path sdk/rust/Cargo.lock ! -path "$src/Cargo.lock" -print
            find sdk/wit -maxdepth 1 -type f -name '*.wit' -print
            echo plugins/Cargo.lock
            echo plugins/Cargo.toml
            echo plugins/build.sh
        } | LC_ALL=C sort -u | tr '\n' '\0' | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
    )
}

if [[ $mode == check ]]; then
    stale=()
    for name in "${plugins[@]}" "${fixtures[@]}"; do
        dest="$(dest_of "$name")"
        manifest="$dest/$name.toml"
        want="$(source_hash "$name")"
        have=""
        [[ -f $manifest ]] && have="$(toml_get "$manifest" "" source-hash || true)"
        if [[ $have != "$want" ]]; then
            if [[ -z $have ]]; then
                echo "stale: $name (no source-hash in ${manifest#"$repo"/})" >&2
            else
                echo "stale: $name (${manifest#"$repo"/} has $have, sources hash to $want)" >&2
            fi
            stale+=("$name")
        elif [[ ! -f $dest/$name.wasm ]]; then
            echo "stale: $name (${dest#"$repo"/}/$name.wasm is missing)" >&2
            stale+=("$name")
        fi
    done
    if ((${#stale[@]})); then
        echo "build.sh --check: stale plugin(s): ${stale[*]}; run plugins/build.sh and commit its output" >&2
        exit 1
    fi
    echo "build.sh --check: every plugin is up to date (${plugins[*]} ${fixtures[*]-})"
    exit 0
fi

# --- the toolchain ---------------------------------------------------------------------

wasm_target_dir="${PORTCULLIS_WASM_TARGET_DIR:-$HOME/.cache/portcullis/wasm-target}"
host_target_dir="${CARGO_TARGET_DIR:-$HOME/.cache/portcullis/target}"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
# Test plugins are built from copies here (tests/ is inside the top-level workspace).
stage="$wasm_target_dir/portcullis-fixtures-src"

# Paths that would otherwise end up in panic messages and make the output depend on
# where the repository and caches are.
flags=(
    # A 64 KiB stack (rust-lld's default is 1 MiB) keeps the stack, the data and the SDK's
    # arena in the first pages of memory, which the host keeps resident between instances.
    "-Clink-arg=-zstack-size=65536"
    "--remap-path-prefix=$repo=/portcullis"
    "--remap-path-prefix=$cargo_home=/cargo"
    "--remap-path-prefix=$stage=/portcullis/standalone-plugins"
)
build_env=()
build_args=(build --release --target wasm32-unknown-unknown --target-dir "$wasm_target_dir")

if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    echo "build.sh: using rustup's wasm32-unknown-unknown target" >&2
    sysroot="$(rustc --print sysroot)"
    flags+=("--remap-path-prefix=$sysroot/lib/rustlib/src/rust=/rustc-src")
else
    # No prebuilt std for wasm: Debian's rustc builds it from its source package.
    debian_src() { [[ -x /usr/bin/rustc ]] && [[ -d "$(/usr/bin/rustc --print sysroot)/lib/rustlib/src/rust/library" ]]; }
    if ! debian_src; then
        if [[ $(id -u) -eq 0 ]]; then
            echo "build.sh: installing Debian's rustc-web and rust-web-src" >&2
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -qq
            apt-get install -y -qq rustc-web rust-web-src >&2
        fi
        debian_src || {
            echo "build.sh: need either \`rustup target add wasm32-unknown-unknown\` or Debian's rustc-web and rust-web-src" >&2
            exit 1
        }
    fi
    # rust-lld comes from the rustup toolchain (Debian's rustc has none for wasm).
    lld="$(rustc --print sysroot)/lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld"
    [[ -x $lld ]] || { echo "build.sh: no rust-lld at $lld (a rustup toolchain is needed for the linker)" >&2; exit 1; }
    echo "build.sh: using Debian's $(/usr/bin/rustc --version) with -Zbuild-std" >&2
    flags+=(
        "-Clinker=$lld"
        "--remap-path-prefix=$(/usr/bin/rustc --print sysroot)/lib/rustlib/src/rust=/rustc-src"
    )
    build_env+=(RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1)
    build_args+=(-Zbuild-std=std,panic_abort)
fi

# CARGO_ENCODED_RUSTFLAGS: flags separated by 0x1f, so paths may hold spaces.
encoded_flags="$(IFS=$'\x1f'; echo "${flags[*]}")"

# --- build -----------------------------------------------------------------------------

echo "build.sh: building portcullis-componentize" >&2
(cd "$repo" && CARGO_TARGET_DIR="$host_target_dir" cargo build --quiet --release -p portcullis-componentize)
componentize="$host_target_dir/release/portcullis-componentize"

echo "build.sh: building ${plugins[*]}" >&2
(
    cd "$here"
    pkgs=()
    for name in "${plugins[@]}"; do pkgs+=(-p "$name"); done
    env -u RUSTFLAGS "${build_env[@]}" CARGO_ENCODED_RUSTFLAGS="$encoded_flags" cargo "${build_args[@]}" --locked "${pkgs[@]}"
)

for name in "${fixtures[@]}"; do
    echo "build.sh: building test plugin $name" >&2
    rm -rf "${stage:?}/$name"
    mkdir -p "$stage/$name"
    (cd "$repo/$(src_of "$name")" && tar --exclude=./target -cf - .) | (cd "$stage/$name" && tar -xf -)
    # A workspace of its own, the plugins' release profile and lock file, the SDK by absolute path.
    sed -i "s#path = \"\(\.\./\)*sdk/rust\"#path = \"$repo/sdk/rust\"#" "$stage/$name/Cargo.toml"
    {
        echo
        echo "[workspace]"
        echo
        sed -n '/^\[profile\.release\]/,/^\[/p' "$here/Cargo.toml" | sed '/^\[/!b; /^\[profile\.release\]/!d'
    } >>"$stage/$name/Cargo.toml"
    cp "$here/Cargo.lock" "$stage/$name/Cargo.lock"
    env -u RUSTFLAGS "${build_env[@]}" CARGO_ENCODED_RUSTFLAGS="$encoded_flags" \
        cargo "${build_args[@]}" --manifest-path "$stage/$name/Cargo.toml"
done

for name in "${plugins[@]}" "${fixtures[@]}"; do
    src="$(src_of "$name")"
    dest="$(dest_of "$name")"
    cargo_toml="$repo/$src/Cargo.toml"
    kind="$(toml_get "$cargo_toml" package.metadata.portcullis kind)"
    memory="$(toml_get "$cargo_toml" package.metadata.portcullis memory-mb)"
    deadline="$(toml_get "$cargo_toml" package.metadata.portcullis deadline-ms)"
    description="$(toml_get "$cargo_toml" package description)"
    case "$kind" in
        scope-policy | consent-ui | storage | grant-type) ;;
        *) echo "build.sh: $cargo_toml: [package.metadata.portcullis] kind must be scope-policy, consent-ui, storage or grant-type" >&2; exit 1 ;;
    esac
    [[ $memory =~ ^[0-9]+$ && $deadline =~ ^[0-9]+$ ]] || {
        echo "build.sh: $cargo_toml: [package.metadata.portcullis] needs memory-mb and deadline-ms" >&2
        exit 1
    }

    module="$wasm_target_dir/wasm32-unknown-unknown/release/${name//-/_}.wasm"
    "$componentize" "$module" "$dest/$name.wasm"

    tmp="$dest/$name.toml.tmp"
    cat >"$tmp" <<EOF
name = "$name"
kind = "$kind"
contract = "portcullis:plugin@0.5.0"
description = "$description"
source-hash = "$(source_hash "$name")"

[limits]
memory-mb = $memory
deadline-ms = $deadline

[grants]
env = []
EOF
    if [[ -f $repo/$src/grants.toml ]]; then
        cat "$repo/$src/grants.toml" >>"$tmp"
    fi
    if [[ -f $repo/$src/config.toml ]]; then
        { echo; cat "$repo/$src/config.toml"; } >>"$tmp"
    fi
    mv "$tmp" "$dest/$name.toml"
    echo "build.sh: wrote ${dest#"$repo"/}/$name.wasm ($(wc -c <"$dest/$name.wasm") bytes) and $name.toml" >&2
done
