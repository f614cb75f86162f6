#!/usr/bin/env bash
# What the tests need from the system, besides npm packages: redis-server, Debian's python3
# with redis-py (the Python interop tests), Chromium (the dashboard's browser tests) and
# promtool from Debian's prometheus package (the shipped alert rules and live /metrics).
# Run by `npm test` (pretest) and by .ci/run. On Debian as root it installs what is missing
# with apt; elsewhere it stops at once with the one command to run.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
/usr/bin/python3 -c 'import redis' >/dev/null 2>&1 || missing+=(python3-redis)
command -v "${CHROMIUM_PATH:-chromium}" >/dev/null 2>&1 || missing+=(chromium)
command -v "${PROMTOOL_PATH:-promtool}" >/dev/null 2>&1 || missing+=(prometheus)

if [ ${#missing[@]} -eq 0 ]; then exit 0; fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "tickbus: installing what the tests need: ${missing[*]} (apt-get)…" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  exit 0
fi

echo "tickbus: the tests need ${missing[*]}; install them first: sudo apt-get install ${missing[*]}" >&2
exit 1
