#!/usr/bin/env bash
# Build the Debian 12 base image of tests/Containerfile offline (no registry needed) with
# mmdebstrap, from the Debian apt sources this machine uses, and import it into podman's store
# as localhost/debian:12-kpy. The tarball is cached under $KPY_CT_CACHE (default
# /var/cache/kubelet-py-tests), keyed by the sources and this script, so a second run only imports.
# Usage: tests/container/make-base.sh [IMAGE]      (podman's settings: tests/container/podman-env.sh)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/podman-env.sh"
IMAGE="${1:-$KPY_CT_BASE}"
SUITE="${KPY_CT_SUITE:-bookworm}"
command -v mmdebstrap >/dev/null || ensure_apt mmdebstrap

# The Debian sources apt uses here, without third-party ones (the image knows only Debian's
# keyring): the deb822 stanzas of /etc/apt/sources.list.d/*.sources that name a Debian archive,
# else the one-line entries of /etc/apt/sources.list and sources.list.d/*.list.
DEBIAN_RE='debian-archive-keyring|deb\.debian\.org|security\.debian\.org|snapshot\.debian\.org|/debian(-security)?/? '
sources="$(mktemp --suffix=.sources)"; trap 'rm -f "$sources"' EXIT
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] && awk -v RS= -v ORS='\n\n' -v re="$DEBIAN_RE" '$0 ~ re' "$f" >> "$sources"
done
if ! grep -q '^Types:' "$sources"; then
  mv "$sources" "${sources%.sources}.list"; sources="${sources%.sources}.list"; trap 'rm -f "$sources"' EXIT
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
    | grep -E '^[[:space:]]*deb[[:space:]]' | grep -E "$DEBIAN_RE" > "$sources" || true
fi
[ -s "$sources" ] || { echo "make-base: no Debian apt sources found under /etc/apt" >&2; exit 1; }

# what the tarball is made of: the cache key (a new snapshot, suite or option makes a new one)
opts=(--variant=minbase --include=ca-certificates --aptopt='Acquire::Check-Valid-Until "false"')
key="$( { cat "$sources"; echo "$SUITE ${opts[*]}"; } | sha256sum | cut -c1-16)"
tarball="$KPY_CT_CACHE/base-$SUITE-$key.tar"
mkdir -p "$KPY_CT_CACHE"
if [ -s "$tarball" ]; then
  echo "make-base: cached $tarball" >&2
else
  echo "make-base: mmdebstrap $SUITE from $(grep -v '^#' "$sources" | grep -hoE 'https?://[^ ]+' | sort -u | tr '\n' ' ')" >&2
  trap 'rm -f "$sources" "$tarball.tmp"' EXIT
  mmdebstrap --quiet --format=tar "${opts[@]}" \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/*' \
    "$SUITE" "$tarball.tmp" "$sources"
  mv "$tarball.tmp" "$tarball"
  # keep only this key's tarball
  find "$KPY_CT_CACHE" -maxdepth 1 -name "base-$SUITE-*.tar" ! -name "$(basename "$tarball")" -delete
fi
id="$(podman import --quiet --change 'CMD ["/bin/bash"]' "$tarball" "$IMAGE")"
echo "make-base: $IMAGE = ${id#sha256:} (from $tarball)" >&2
