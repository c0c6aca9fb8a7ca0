#!/usr/bin/env bash
# apt-install.sh PACKAGE "WITHOUT IT" COMMAND...: install Debian's PACKAGE when any COMMAND is missing.
# The project's own setup step for the system tools its tests and demo use: `make prometheus` (the server
# and promtool: make demo's dashboard previews and tests/test_dashboard_preview.py) and `make chromium`
# (headless Chromium: the UI tests of tests/test_local_stack.py), prerequisites of make test and make demo;
# .ci/run calls both. Never fails the caller: without apt or root it says what to install, and WITHOUT IT
# says what is then missing (the tests that need the tool skip, naming it).
set -uo pipefail

package=$1
without=$2
shift 2

missing=0
for command in "$@"; do
  command -v "$command" >/dev/null || missing=1
done
[ "$missing" = 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "WARNING: $* not found and no apt-get here: install $package; without it $without"
  exit 0
fi
as_root=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    echo "WARNING: $* not found: run 'sudo apt-get install $package' (needs root); without it $without"
    exit 0
  fi
fi
echo "==> installing $package (apt-get install $package)"
# No daemon is wanted from a package (the previews start their own Prometheus): policy-rc.d answers
# 101, which invoke-rc.d and deb-systemd-invoke obey, for the install's duration.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee "$policy" >/dev/null && "${as_root[@]}" chmod 755 "$policy" \
    && created_policy=1
fi
if "${as_root[@]}" apt-get update -qq && "${as_root[@]}" apt-get install -y -qq "$package" >/dev/null; then
  status=0
else
  status=1
fi
[ "$created_policy" = 1 ] && "${as_root[@]}" rm -f "$policy"
if [ "$status" != 0 ]; then
  echo "WARNING: apt-get install $package failed; without it $without"
  exit 0
fi
echo "    $package installed: $(command -v "$1")"
