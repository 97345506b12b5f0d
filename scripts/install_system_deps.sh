#!/usr/bin/env bash
# Installs the system parts the tests use, when missing: Debian's Chromium and a colour emoji font
# (browser tests; listing titles hold emoji) and PostgreSQL (store tests), in one apt-get call. Tests
# skip with the reason when a part is missing (and fail under CI=true), so this script never fails
# `make test` by itself.
set -u
missing=()
[ -n "${CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
  || missing+=(chromium)
fc-list 2>/dev/null | grep -qi 'Noto Color Emoji' || [ -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] \
  || missing+=(fonts-noto-color-emoji)
command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0
later="tests that need ${missing[*]} will skip (and fail under CI=true)"
[ "$(id -u)" = 0 ] || { echo "install_system_deps: not root, $later"; exit 0; }
command -v apt-get >/dev/null 2>&1 || { echo "install_system_deps: no apt-get, $later"; exit 0; }
echo "install_system_deps: installing ${missing[*]}"
(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null) \
  || echo "install_system_deps: ${missing[*]} could not be installed, $later"
exit 0
