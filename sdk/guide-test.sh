#!/usr/bin/env bash
# Runs sdk/GUIDE.md as its reader would, against a real server.
#
# The rule for the guide's fenced blocks: every block opened with ```sh runs, as written, in
# the order of the guide, all in one bash shell (`set -euo pipefail`: a failing command fails
# the run), started in a new empty temporary directory. Blocks opened with ```text (output,
# code to read, the reader's own settings) never run; nor does any other block.
#
# What the guide asks the reader to have is given here: `portcullis` on PATH (the binary of
# this checkout's build, `cargo build -p portcullis`; or the one named as the first argument)
# and CHECKOUT, this checkout. The environment is otherwise only HOME and PATH, and
# whatever the blocks start in the background is stopped when the run ends.
#
#   sdk/guide-test.sh [PORTCULLIS_BINARY]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
guide="$repo/sdk/GUIDE.md"

if (($#)); then
    binary="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
else
    (cd "$repo" && cargo build --quiet --locked -p portcullis)
    binary="${CARGO_TARGET_DIR:-$repo/target}/debug/portcullis"
fi
[[ -x $binary ]] || { echo "guide-test.sh: no portcullis binary at $binary" >&2; exit 1; }

work="$(mktemp -d)"
bin="$work/.bin"
mkdir -p "$bin"
ln -s "$binary" "$bin/portcullis"

# The ```sh blocks, in order, with a line naming where each starts in the guide.
script="$work/.guide.sh"
{
    echo 'set -euo pipefail'
    echo "trap 'jobs -p | xargs -r kill 2>/dev/null || true' EXIT"
    awk '
        /^```/ && !in_block { in_block = 1; runs = ($0 == "```sh"); if (runs) printf "echo \"== GUIDE.md line %d\" >&2\n", NR; next }
        /^```/ && in_block { in_block = 0; runs = 0; next }
        in_block && runs { print }
    ' "$guide"
} >"$script"
blocks="$(grep -c '^```sh$' "$guide")"
((blocks > 0)) || { echo "guide-test.sh: no sh block in $guide" >&2; exit 1; }

echo "guide-test.sh: running the $blocks sh blocks of sdk/GUIDE.md in $work" >&2
cd "$work"
env -i HOME="$HOME" PATH="$bin:$PATH" CHECKOUT="$repo" bash "$script"
rm -rf "$work"
echo "guide-test.sh: every block of sdk/GUIDE.md ran"
