#!/usr/bin/env bash
# Install the third-party servers and clients that tests/interop talks to.
#
# Usage: bash .ci/install-interop.sh [VENV]   (default: $VENV, else .venv)
#
# Meant for a fresh Debian 12 machine, run as root; safe to run again (each
# step is skipped or is a no-op when its work is already done). A server that
# apt cannot provide is reported and skipped: the interop tests skip it too.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_DIR="${1:-${VENV:-.venv}}"
PYTHON="${PYTHON:-python3}"

log() { printf '[install-interop] %s\n' "$*" >&2; }

# --- Debian packages ---------------------------------------------------------
# nghttp2-client provides h2load (and nghttp); nghttp2-server provides nghttpd.
# dante-server provides danted, the SOCKS proxy of the proxy interop tests.
APT_PACKAGES=(lighttpd h2o nginx nghttp2-server nghttp2-client tinyproxy dante-server)
# Daemons whose postinst would start them system-wide on port 80/8888/1080.
SERVICES=(lighttpd h2o nginx tinyproxy danted)

is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

has_candidate() {
    # "Candidate: (none)" or no output at all means apt cannot install it.
    local cand
    cand="$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')"
    [[ -n "$cand" && "$cand" != "(none)" ]]
}

install_apt() {
    local missing=() wanted=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        is_installed "$pkg" || missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        log "apt: all of ${APT_PACKAGES[*]} already installed"
        return 0
    fi
    if ! command -v apt-get >/dev/null; then
        log "apt: apt-get not found; skipping ${missing[*]} (their tests will skip)"
        return 0
    fi
    apt-get update
    for pkg in "${missing[@]}"; do
        if has_candidate "$pkg"; then
            wanted+=("$pkg")
        else
            log "apt: package '$pkg' is not available here; skipping it (its tests will skip)"
        fi
    done
    ((${#wanted[@]} > 0)) || return 0

    # Keep postinst scripts from starting the daemons: tests start their own
    # copies on free loopback ports. Only remove the policy file if we made it.
    local made_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\n# temporary: written by install-interop.sh\nexit 101\n' \
            >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi

    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${wanted[@]}"; then
        # One bad package must not cost us the others: retry one at a time.
        log "apt: batch install failed; retrying package by package"
        for pkg in "${wanted[@]}"; do
            apt-get install -y --no-install-recommends "$pkg" ||
                log "apt: could not install '$pkg'; skipping it (its tests will skip)"
        done
    fi

    if ((made_policy)); then
        rm -f /usr/sbin/policy-rc.d
        trap - EXIT
    fi
}

stop_services() {
    # Belt and braces: if something did start a system copy, stop it so it
    # holds no ports or pid files. Absent services make `service` fail: fine.
    local svc
    command -v service >/dev/null || return 0
    for svc in "${SERVICES[@]}"; do
        if [[ -e "/etc/init.d/$svc" ]]; then
            service "$svc" stop >/dev/null 2>&1 || true
        fi
    done
}

# --- Python packages ---------------------------------------------------------
# Lower bounds only: websockets 13 introduced websockets.asyncio.server; the
# others are the first releases with the APIs and options the apps use.
PY_PACKAGES=(
    "websockets>=13.0"
    "uvicorn>=0.30"
    "hypercorn>=0.17"
    "wsproto>=1.2"
    "httpx[http2]>=0.27"
    "trio-websocket>=0.11"
    "aiohttp>=3.9"
)

install_python() {
    if [[ ! -x "$VENV_DIR/bin/python" ]]; then
        log "python: creating venv $VENV_DIR"
        "$PYTHON" -m venv "$VENV_DIR"
    fi
    "$VENV_DIR/bin/python" -m pip install --disable-pip-version-check -q "${PY_PACKAGES[@]}"
}

# --- Node packages -----------------------------------------------------------
install_node() {
    local dir="$REPO_ROOT/tests/interop/node"
    # Use the machine's own Node/npm: Debian's npm package conflicts with it.
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        log "node: node/npm not found; skipping ws (Node interop tests will skip)"
        return 0
    fi
    log "node: $(node --version), npm $(npm --version)"
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error)
}

main() {
    if [[ "$(id -u)" != 0 ]]; then
        log "warning: not root; apt steps will fail"
    fi
    install_apt
    stop_services
    install_python
    install_node
    log "done"
}

main "$@"
