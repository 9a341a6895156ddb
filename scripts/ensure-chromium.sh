#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests when it is missing (needs root and apt).
set -u
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null && exit 0
fi
if [ "${CI:-}" = "true" ]; then
  echo "chromium is missing and could not be installed; CI=true requires it" >&2
  exit 1
fi
echo "chromium is missing: the browser tests will be skipped" >&2
