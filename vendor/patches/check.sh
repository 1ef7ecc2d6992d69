#!/usr/bin/env bash
# Checks that the vendored crates are exactly the published 0.11.0 crates with this directory's
# patches applied, in order:
#   NNNN-<crate>-*.remove  paths deleted from the crate (one a line), applied before
#   NNNN-<crate>-*.patch   a `git apply -p1` patch, paths relative to the crate's directory,
# where <crate> is `protocol` (rabbitmq-stream-protocol) or `client` (rabbitmq-stream-client).
# Exits non-zero, printing the difference, if pristine + patches is not vendor/.
#
#   vendor/patches/check.sh              check both crates
#   vendor/patches/check.sh --new CRATE  print, as a patch, what vendor/CRATE has beyond the
#                                        series (save it as the next NNNN-<crate>-*.patch)
#
# The pristine crates come from cargo's download cache (~/.cargo/registry/cache), or from
# static.crates.io when they are not there; either way their SHA-256 must be the one the
# crates.io index records.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENDOR="$(dirname "$HERE")"
VERSION=0.11.0
declare -A SHA256=(
    [rabbitmq-stream-client]=f7e766fd5cccfba5caa077d0b00de81840f0553a15325f22b59e87322f235d10
    [rabbitmq-stream-protocol]=97fedda81585bf2b5f8b91be49a592d2c91cb060c2c1927840617c52a67d1b7d
)

NEW=""
if [ "${1:-}" = --new ]; then
    NEW="${2:?--new needs a crate: rabbitmq-stream-client or rabbitmq-stream-protocol}"
    [ -n "${SHA256[$NEW]:-}" ] || { echo "unknown crate $NEW" >&2; exit 2; }
elif [ $# -gt 0 ]; then
    echo "usage: $0 [--new CRATE]" >&2
    exit 2
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# The published .crate file of $1, checked.
pristine_crate() {
    local crate=$1 file
    file="$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$crate-$VERSION.crate" 2>/dev/null | head -n1 || true)"
    if [ -z "$file" ]; then
        file="$WORK/$crate-$VERSION.crate"
        curl -sSfL -o "$file" "https://static.crates.io/crates/$crate/$crate-$VERSION.crate"
    fi
    echo "${SHA256[$crate]}  $file" | sha256sum --check --quiet - >&2
    echo "$file"
}

status=0
for crate in rabbitmq-stream-protocol rabbitmq-stream-client; do
    if [ -n "$NEW" ] && [ "$NEW" != "$crate" ]; then continue; fi
    short=${crate#rabbitmq-stream-}
    tar -xzf "$(pristine_crate "$crate")" -C "$WORK"
    tree="$WORK/$crate-$VERSION"
    for step in $(ls "$HERE" | grep -E "^[0-9]{4}-$short-.*\.(remove|patch)$" | sed -E 's/\.(remove|patch)$//' | sort -u); do
        if [ -f "$HERE/$step.remove" ]; then
            while IFS= read -r path; do
                [ -n "$path" ] || continue
                [ -e "$tree/$path" ] || { echo "$step.remove: $path is not in the crate" >&2; exit 1; }
                rm -rf "${tree:?}/$path"
            done < "$HERE/$step.remove"
        fi
        if [ -f "$HERE/$step.patch" ]; then
            (cd "$tree" && git apply -p1 --whitespace=nowarn "$HERE/$step.patch") ||
                { echo "$step.patch does not apply" >&2; exit 1; }
        fi
    done
    # .cargo-ok is the marker cargo writes when it extracts a crate, not part of the crate.
    if [ -n "$NEW" ]; then
        mkdir -p "$WORK/new"
        cp -a "$tree" "$WORK/new/a"
        cp -a "$VENDOR/$crate" "$WORK/new/b"
        rm -f "$WORK/new/a/.cargo-ok" "$WORK/new/b/.cargo-ok"
        (cd "$WORK/new" && git -c core.quotepath=off diff --no-index --no-prefix --no-color \
            --no-ext-diff --full-index a b) || true
    elif ! diff -ru --exclude=.cargo-ok "$tree" "$VENDOR/$crate"; then
        echo "$crate: pristine $VERSION + patches differs from vendor/$crate (above)" >&2
        status=1
    else
        echo "$crate: pristine $VERSION + patches == vendor/$crate"
    fi
done
exit $status
