# Sourced by ci/compose-smoke and ci/compose-tests (under ci/with-docker): the base images (the local ones where no
# registry answers), a throwaway TLS pair whose key the API's user can read (docker-compose 1.29 mounts file
# secrets as they are on the host), a project of this run's own, and `compose`; all of it removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! docker pull -q "${PYTHON_IMAGE:-python:3.11-slim-bookworm}" >/dev/null 2>&1; then
    bases=$(./ci/local-bases)
    PYTHON_IMAGE=$(echo "$bases" | sed -n 1p)
    POSTGRES_IMAGE=$(echo "$bases" | sed -n 2p)
    export PYTHON_IMAGE POSTGRES_IMAGE
fi
tls=$(mktemp -d)
uv run --frozen python -c "from pathlib import Path; from app.dev.certificate import ensure_self_signed; ensure_self_signed(Path('$tls'))"
chmod 0644 "$tls/localhost.key"
export TLS_CERT_HOST_FILE="$tls/localhost.crt" TLS_KEY_HOST_FILE="$tls/localhost.key" TAG="run-$$"
project="pg-$$"
compose_files=(--file compose.yaml)
compose() { docker-compose --project-name "$project" "${compose_files[@]}" "$@"; }
cleanup() {
    compose down --volumes --remove-orphans --rmi local >/dev/null 2>&1 || true
    rm -rf "$tls"
}
trap cleanup EXIT
