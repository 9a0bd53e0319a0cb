# Sourced by ci/compose-smoke and ci/compose-tests (under ci/with-docker): the base images (the local ones where no
# registry answers), a throwaway TLS pair whose key the API's user can read (docker-compose 1.29 mounts file
# secrets as they are on the host), a project of this run's own, and `compose`; all of it removed on exit.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
if ! docker pull -q "${PYTHON_IMAGE:-python:3.11-slim-bookworm}" >/dev/null 2>&1; then
    bases=$(./ci/local-bases)
    PYTHON_IMAGE=$(echo "$bases" | sed -n 1p)
    POSTGRES_IMAGE=$(echo "$bases" | sed -n 2p)
    export PYTHON_IMAGE POSTGRES_IMAGE
fi
tls=$(mktemp -d)
run python -c "from pathlib import Path; from app.dev.certificate import ensure_self_signed; ensure_self_signed(Path('$tls'), also_for=['api'])"
chmod 0644 "$tls/localhost.key"
export TLS_CERT_HOST_FILE="$tls/localhost.crt" TLS_KEY_HOST_FILE="$tls/localhost.key" TAG="run-$$"
project="pg-$$"
compose_files=(--file compose.yaml)
# Docker Compose v2 where it is (hosted runners), docker-compose 1.29 otherwise (Debian's, here).
if docker compose version >/dev/null 2>&1; then compose_command=(docker compose); else compose_command=(docker-compose); fi
compose() { "${compose_command[@]}" --project-name "$project" "${compose_files[@]}" "$@"; }
cleanup() {
    compose down --volumes --remove-orphans --rmi local >/dev/null 2>&1 || true
    rm -rf "$tls"
}
trap cleanup EXIT
