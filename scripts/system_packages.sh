#!/usr/bin/env bash
# Debian packages of the services some tests start themselves on 127.0.0.1: a PostgreSQL
# server (instance-storage tests), a Redis server (the Celery broker of the distributed
# training test) and headless Chromium (UI tests). Installs what is missing
# when run as root (CI); otherwise says what to install (those tests skip without them).
set -euo pipefail
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then
  echo "==> system packages present (postgresql, redis-server, chromium)"
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "==> installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
else
  echo "==> not installed: ${need[*]} (apt-get install ${need[*]}); their tests will skip"
fi
