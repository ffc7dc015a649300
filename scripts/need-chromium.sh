#!/usr/bin/env bash
# need_chromium: makes sure a headless-capable Chromium is on PATH for
# tests/dashboard_browser.rs, installing the Debian package `chromium` with apt
# where it is missing. Meant to be sourced by scripts/test; runnable on its own.

need_chromium() {
    local found
    for candidate in "${SLUICEGATE_CHROMIUM:-}" chromium chromium-browser google-chrome; do
        [ -n "$candidate" ] || continue
        if found=$(command -v "$candidate" 2>/dev/null); then
            echo "need_chromium: using $found" >&2
            return 0
        fi
    done
    echo "need_chromium: no chromium on PATH; installing the Debian package 'chromium'" >&2
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
            echo "need_chromium: not root and no sudo: install the package 'chromium' yourself (apt-get install -y chromium)" >&2
            return 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "need_chromium: no apt-get here: install Chromium yourself and set SLUICEGATE_CHROMIUM to its path" >&2
        return 1
    fi
    $sudo apt-get install -y chromium >&2 || { $sudo apt-get update >&2 && $sudo apt-get install -y chromium >&2; } || {
        echo "need_chromium: apt-get could not install the package 'chromium'" >&2
        return 1
    }
    command -v chromium >/dev/null 2>&1 || { echo "need_chromium: 'chromium' installed but not on PATH" >&2; return 1; }
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    need_chromium
fi
