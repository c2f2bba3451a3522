#!/usr/bin/env bash
# Install the Autobahn Testsuite (`wstest`, PyPI autobahntestsuite 0.8.2) into a
# Python 2.7 virtualenv, for tests/autobahn/run.py.
#
# Usage: bash .ci/install-autobahn.sh [DIR]
#        (default: $AUTOBAHN_VENV, else .venv-autobahn at the repository root)
#
# Needs Python 2.7 (pyenv's 2.7.18 on our machines; $PYTHON2 overrides the
# search), a C compiler and the Python 2 headers (Twisted, zope.interface and
# wsaccel build from source), and PyPI. Every package is pinned to the last
# release that supports Python 2.7 and works with autobahn 0.10.9, which
# autobahntestsuite 0.8.2 requires. Safe to run again: a virtualenv whose
# stamp matches these pins and whose wstest starts is left as it is.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${1:-${AUTOBAHN_VENV:-$REPO_ROOT/.venv-autobahn}}"

log() { printf '[install-autobahn] %s\n' "$*" >&2; }

# The last virtualenv that runs on Python 2.7 (it seeds pip 20.3.4,
# setuptools 44.1.1 and wheel 0.37.1 from wheels it carries).
VIRTUALENV_PIN="virtualenv==20.15.1"
PINS=(
    autobahntestsuite==0.8.2
    autobahn==0.10.9
    txaio==2.1.0
    Twisted==20.3.0
    zope.interface==5.5.2
    Automat==22.10.0
    attrs==21.4.0
    constantly==15.1.0
    hyperlink==21.0.0
    incremental==22.10.0
    PyHamcrest==1.10.1
    idna==2.10
    typing==3.10.0.0
    six==1.17.0
    wsaccel==0.6.6
    ujson==2.0.3
    klein==20.6.0
    Tubes==0.2.1
    Werkzeug==1.0.1
    enum34==1.1.10
    Jinja2==2.11.3
    MarkupSafe==1.1.1
    pyOpenSSL==21.0.0
    cryptography==3.3.2
    cffi==1.15.1
    pycparser==2.21
    ipaddress==1.0.23
    service-identity==21.1.0
    pyasn1==0.5.1
    pyasn1-modules==0.3.0
    unittest2==1.1.0
    argparse==1.4.0
    linecache2==1.0.0
    traceback2==1.4.0
)
STAMP_TEXT="$VIRTUALENV_PIN ${PINS[*]}"
STAMP="$DIR/.autobahn-pins"

find_python2() {
    if [[ -n "${PYTHON2:-}" ]]; then
        printf '%s\n' "$PYTHON2"
        return 0
    fi
    local root candidate
    root="$(pyenv root 2>/dev/null || printf '%s' "${PYENV_ROOT:-$HOME/.pyenv}")"
    # The newest 2.7.x that pyenv has, called directly (no shim, no
    # PYENV_VERSION needed).
    for candidate in $(ls -d "$root"/versions/2.7.* 2>/dev/null | sort -V -r); do
        if [[ -x "$candidate/bin/python2.7" ]]; then
            printf '%s\n' "$candidate/bin/python2.7"
            return 0
        fi
    done
    for candidate in python2.7 python2; do
        if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_TEXT" ]] \
    && "$DIR/bin/wstest" --autobahnversion >/dev/null 2>&1; then
    log "already installed in $DIR"
    exit 0
fi

if ! PY2="$(find_python2)"; then
    log "no Python 2.7 found (install it with 'pyenv install 2.7.18', or set PYTHON2)"
    exit 1
fi
log "using $PY2 ($("$PY2" -c 'import sys; print(sys.version.split()[0])'))"
start=$(date +%s)

# Python 2.7 has no venv module: run a Python-2-capable virtualenv from a
# throwaway directory, so that nothing is installed into the interpreter.
boot="$(mktemp -d)"
trap 'rm -rf "$boot"' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONWARNINGS=ignore
"$PY2" -m pip install --quiet --no-warn-script-location --target "$boot/lib" "$VIRTUALENV_PIN"
rm -rf "$DIR"
PYTHONPATH="$boot/lib" "$PY2" -m virtualenv --quiet --no-download \
    --no-periodic-update --app-data "$boot/app-data" "$DIR"

"$DIR/bin/python" -m pip install --quiet --no-warn-script-location "${PINS[@]}"
"$DIR/bin/python" -m pip check
"$DIR/bin/wstest" --autobahnversion >/dev/null
printf '%s' "$STAMP_TEXT" >"$STAMP"
log "installed wstest in $DIR in $(($(date +%s) - start)) s"
