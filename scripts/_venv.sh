# Shared by scripts/run and scripts/test: find Python 3.11+, make .venv, install the project.
# Usage: source scripts/_venv.sh EXTRA   (EXTRA is "server" or "dev")
pick_python() {
  for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  echo "paywarden needs Python 3.11 or newer on PATH (or set PYTHON=/path/to/python3.11)" >&2
  return 1
}

ensure_venv() {
  local extra="$1" python stamp
  if [ ! -x .venv/bin/python ]; then
    python=$(pick_python)
    echo "==> creating .venv with $($python --version)"
    "$python" -m venv .venv
  fi
  # Reinstall only when the pinned dependencies changed since the last install.
  stamp=".venv/.installed-$extra-$(sha256sum pyproject.toml | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    echo "==> installing paywarden[$extra] (pinned; first run takes a minute)"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[$extra]"
    rm -f .venv/.installed-"$extra"-*
    touch "$stamp"
  fi
}
