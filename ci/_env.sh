# Sourced by every stage: run from the repository's root, with uv on PATH and the locked environment in place.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.local/bin:$PATH"
command -v uv >/dev/null 2>&1 || python3 -m pip install --user --quiet uv || python3 -m pip install --user --quiet --break-system-packages uv
uv sync --frozen --quiet
run() { uv run --frozen --no-sync "$@"; }
# Debian's packages a stage needs, installed when missing (as root here; through sudo on a hosted runner).
apt_install() {
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "$@" >/dev/null
}
