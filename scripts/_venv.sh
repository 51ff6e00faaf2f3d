# Sourced by the scripts: make ./.venv with the project installed (again when pyproject.toml changes).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv"
    "$PYTHON" -m venv .venv
fi
STAMP=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$STAMP" ]; then
    echo "==> installing the project and its dependencies into .venv (log: .venv/install.log)"
    if ! { .venv/bin/python -m pip install --disable-pip-version-check --upgrade pip &&
           .venv/bin/python -m pip install --disable-pip-version-check -e ".[dev]"; } > .venv/install.log 2>&1; then
        tail -n 30 .venv/install.log
        echo "installing failed; see .venv/install.log" >&2
        exit 1
    fi
    rm -f .venv/.installed-*
    touch "$STAMP"
fi
