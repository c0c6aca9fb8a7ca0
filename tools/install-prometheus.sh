#!/usr/bin/env bash
# Debian's `prometheus` package (the server and promtool) when either is missing: the dashboard
# previews of `make demo` and their tests (tests/test_dashboard_preview.py) backfill a capture with
# promtool and query the server. Called by `make prometheus` (a prerequisite of make demo and the
# test targets) and by .ci/run. Never fails the caller: without apt it says what to install.
set -uo pipefail

if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "WARNING: prometheus/promtool not found and no apt-get here: install Prometheus 2.x (server and promtool)"
  echo "         on the PATH; without them make demo draws no dashboard previews and their tests skip"
  exit 0
fi
as_root=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    echo "WARNING: prometheus/promtool not found: run 'sudo apt-get install prometheus' (needs root);"
    echo "         without them make demo draws no dashboard previews and their tests skip"
    exit 0
  fi
fi
echo "==> installing Prometheus and promtool (apt-get install prometheus)"
# No daemon is wanted from the package (the previews start their own server): policy-rc.d
# answers 101, which invoke-rc.d and deb-systemd-invoke obey, for the install's duration.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee "$policy" >/dev/null && "${as_root[@]}" chmod 755 "$policy" \
    && created_policy=1
fi
if "${as_root[@]}" apt-get update -qq && "${as_root[@]}" apt-get install -y -qq --no-install-recommends prometheus >/dev/null; then
  status=0
else
  status=1
fi
[ "$created_policy" = 1 ] && "${as_root[@]}" rm -f "$policy"
if [ "$status" != 0 ]; then
  echo "WARNING: apt-get install prometheus failed; without it make demo draws no dashboard previews and their tests skip"
  exit 0
fi
prometheus --version 2>&1 | head -n1
