# Sourced by every stage: run from the repository's root, with uv on PATH and the locked environment in place.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.local/bin:$PATH"
command -v uv >/dev/null 2>&1 || python3 -m pip install --user --quiet uv || python3 -m pip install --user --quiet --break-system-packages uv
uv sync --frozen --quiet
run() { uv run --frozen --no-sync "$@"; }
