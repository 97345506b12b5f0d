#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests when it is missing. The tests skip with a
# reason when no browser can be had, so a failure here never fails `make test` by itself.
set -u
command -v chromium >/dev/null 2>&1 && exit 0
[ "$(id -u)" = 0 ] || { echo "install_browser: not root, browser tests will skip"; exit 0; }
command -v apt-get >/dev/null 2>&1 || { echo "install_browser: no apt-get, browser tests will skip"; exit 0; }
(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
  || echo "install_browser: chromium could not be installed, browser tests will skip"
