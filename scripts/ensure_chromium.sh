#!/usr/bin/env bash
# Headless Chromium and its WebDriver, from Debian's packages, for the web chat page's browser test
# (tests/test_serve_browser.py). Installs them with apt-get only where they are missing.
set -e
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "lntune: error: chromium and chromium-driver are missing and apt-get is not here to install them" >&2
  exit 1
fi
echo "chromium not found: installing chromium and chromium-driver with apt-get"
SUDO=""
[ "$(id -u)" = "0" ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
/usr/bin/chromium --version
