# shellcheck shell=bash
# Shared set-up for scripts/demo and scripts/test: Debian packages, then a venv with the project.
set -euo pipefail
TOP="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${KPY_VENV:-$TOP/.venv}"

# Install the Debian/Ubuntu packages named, only those missing (apt-get update only if needed).
ensure_apt() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || { echo "kubelet-py: need root to install: ${missing[*]}" >&2; exit 1; }
  echo "kubelet-py: installing ${missing[*]}" >&2
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}

# Create the venv (once) and install the project into it, with extras "$1" if given.
ensure_venv() {
  local extras="${1:-}" py="${PYTHON:-python3}"
  command -v "$py" >/dev/null || ensure_apt python3
  "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "kubelet-py: needs Python >= 3.11, $py is $("$py" -V 2>&1)" >&2; exit 1; }
  if [ ! -x "$VENV/bin/python" ]; then
    "$py" -m venv "$VENV" 2>/dev/null || { ensure_apt python3-venv; "$py" -m venv "$VENV"; }
  fi
  # installed for this pyproject.toml's content (not its mtime: a fresh clone, or a container
  # layer built from another checkout, has a newer file with the same dependencies)
  local stamp="$VENV/.kpy-installed${extras:+-$extras}" want
  want="$(sha256sum "$TOP/pyproject.toml" | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    "$VENV/bin/pip" install -q --disable-pip-version-check --config-settings editable_mode=compat -e "$TOP${extras:+[$extras]}" >&2
    echo "$want" > "$stamp"
  fi
}
