#!/usr/bin/env bash
# System packages the test suite needs beyond the services (idempotent; needs root for apt).
#   chromium — headless browser for tests/integration/test_report_browser.py
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if (( ${#missing[@]} )); then
  echo "[test-deps] installing: ${missing[*]}" >&2
  if [[ $(id -u) -ne 0 ]]; then
    echo "[test-deps] ERROR: need root to apt-get install ${missing[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
