#!/usr/bin/env bash
# System packages the test suite needs beyond the services (idempotent; needs root for apt).
#   chromium — headless browser for tests/integration/test_report_browser.py
set -euo pipefail
command -v chromium >/dev/null 2>&1 || exec bash "$(dirname "$0")/services.sh" apt-install chromium
