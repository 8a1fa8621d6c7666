#!/usr/bin/env bash
# Installs what building and testing Runbook Studio needs on Debian/Ubuntu, skipping
# whatever is already there: system packages, tauri-driver, npm packages, and a
# running PostgreSQL for the storage tests. Usage: scripts/deps.sh [run|serve|test]
set -euo pipefail
purpose=${1:-test}
cd "$(dirname "$0")/.."

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

build_pkgs=(build-essential pkg-config curl file libssl-dev)
desktop_pkgs=(libxdo-dev libwebkit2gtk-4.1-dev libjavascriptcoregtk-4.1-dev libsoup-3.0-dev
  libayatana-appindicator3-dev librsvg2-dev libdbus-1-dev)
test_pkgs=(xvfb xauth webkit2gtk-driver chromium postgresql-client sqlite3 gnome-keyring dbus-daemon dbus-bin libsecret-tools)

case "$purpose" in
  serve) wanted=("${build_pkgs[@]}") ;;
  run) wanted=("${build_pkgs[@]}" "${desktop_pkgs[@]}") ;;
  *) wanted=("${build_pkgs[@]}" "${desktop_pkgs[@]}" "${test_pkgs[@]}") ;;
esac

missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing system packages: ${missing[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

npm_install() {
  local dir=$1
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    echo "==> npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}
npm_install src-ui

if [ "$purpose" = test ]; then
  npm_install tests/e2e
  if ! command -v tauri-driver >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/tauri-driver" ]; then
    echo "==> cargo install tauri-driver"
    cargo install tauri-driver --version 2.1.0 --locked --quiet
  fi
  url=${RUNBOOK_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
      echo "==> installing PostgreSQL"
      sudo_if_needed apt-get update -qq
      sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    echo "==> starting PostgreSQL $version"
    sudo_if_needed pg_ctlcluster --skip-systemctl-redirect "$version" main start || sudo_if_needed pg_ctlcluster "$version" main start
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  if ! psql "$url" -Atqc 'select 1' >/dev/null 2>&1; then
    # A fresh cluster has no `test` database; create it when we can.
    sudo_if_needed su postgres -c "createdb test" >/dev/null 2>&1 || true
  fi
  if ! psql "$url" -Atqc 'select 1' >/dev/null 2>&1; then
    echo "error: cannot log in to PostgreSQL at $url; set RUNBOOK_TEST_POSTGRES_URL to a URL that works" >&2
    exit 1
  fi
fi
