#!/usr/bin/env bash
# Installs what walrouter needs to build, test and run its demos (Debian 12).
# Runs apt-get only when a package is missing, so a second run is instant.
set -euo pipefail

packages=(
  build-essential cmake pkg-config libpq-dev libssl-dev postgresql
  valgrind iproute2
  lua5.4 liblua5.4-dev lua-busted lua-sql-postgres
  swig python3-dev python3-pytest python3-psycopg python3-psycopg2
  python3-venv python3-setuptools python3-wheel python3-build python3-mypy
  python3-asyncpg python3-aiohttp python3-sqlalchemy python3-hypothesis
  python3-matplotlib
  nginx libnginx-mod-http-lua lua-resty-core lua-cjson luajit2 libluajit2-5.1-dev
  patroni etcd-server etcd-client pgpool2 pgbouncer
  clang libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
