#!/usr/bin/env bash
# The system tools the tests drive, from Debian's archive: redis-server (the cache's shared
# tier), prometheus with promtool (the scrape and alert-rule tests) and chromium (the dashboard's
# browser test). The service itself needs none of them.
#
#   scripts/test-tools.sh install TOOL...   install what is missing (apt-get, as root)
#   scripts/test-tools.sh check TOOL...     dry-run (apt-get -s) every version the recipe may take
#                                           against the archive as it is now, whatever is installed
#   scripts/test-tools.sh summary TOOL...   one line per tool: name, version, where
#
# TOOL is redis, prometheus or browser. No exact version is pinned: Debian's security archive
# replaces builds (it keeps only the newest), so an exact pin stops installing the day it moves.
# The recipe takes the versions the archive offers for the named package, newest first (the
# security build, then the release's own), and installs the first that installs, with every
# package the named one depends on at exactly its version (chromium-common for chromium,
# redis-tools for redis-server) pinned to that same version, so a fallback really installs.
# apt checks each package against the archive's signed index. The version installed is printed.
# A tool that cannot be installed stops with one line naming it and the command to try.
set -euo pipefail

# The package each tool is and the binaries the tests run from it.
package_of() {
    case "$1" in
    redis) echo redis-server ;;
    prometheus) echo prometheus ;;
    browser) echo chromium ;;
    *) echo "unknown test tool '$1' (known: redis, prometheus, browser)" >&2; exit 2 ;;
    esac
}
binaries_of() {
    case "$1" in
    redis) echo redis-server redis-cli ;;
    prometheus) echo prometheus promtool ;;
    browser) echo chromium ;;
    esac
}
# The packaged service the install may start; the tests start their own on 127.0.0.1.
service_of() {
    case "$1" in
    redis) echo redis-server ;;
    prometheus) echo prometheus ;;
    *) echo "" ;;
    esac
}

apt_env=(env DEBIAN_FRONTEND=noninteractive)
apt_opts=(-y -qq --no-install-recommends -o Dpkg::Use-Pty=0)

installed_version() {
    local out
    out="$(dpkg-query -W -f='${db:Status-Status} ${Version}' "$1" 2>/dev/null || true)"
    [[ "$out" == installed\ * ]] && echo "${out#installed }"
}

# The versions the archive offers for a package, in apt's order of preference.
archive_versions() {
    apt-cache madison "$1" | awk -F'|' '{gsub(/ /, "", $2); print $2}' | awk '!seen[$0]++'
}

# The package=version arguments that install PKG at VERSION: PKG itself and each package it
# depends on at exactly that version (built from the same source, so they move together).
pinned_set() {
    local pkg="$1" version="$2"
    echo "$pkg=$version"
    apt-cache show "$pkg=$version" 2>/dev/null | sed -n 's/^Depends: //p' | head -n1 | tr ',' '\n' |
        sed -n "s/^ *\([a-z0-9.+-]*\) *(= \(.*\)).*$/\1=\2/p"
}

apt_updated=0
apt_update() {
    [[ $apt_updated == 1 ]] && return 0
    apt-get update -qq
    apt_updated=1
}

need_root() {
    local tool="$1" pkg="$2"
    if [[ "$(id -u)" != 0 ]]; then
        echo "error: test tool $tool ($pkg) is not installed and apt-get needs root; try: sudo make $tool" >&2
        exit 1
    fi
}

# Installs the first version of the tool's package that installs; prints the version chosen.
run_recipe() {
    local tool="$1" pkg versions version tried=()
    pkg="$(package_of "$tool")"
    if ! apt_update >/dev/null 2>&1; then
        echo "error: test tool $tool: apt-get update failed; try: apt-get update && make $tool" >&2
        return 1
    fi
    versions="$(archive_versions "$pkg")"
    if [[ -z "$versions" ]]; then
        echo "error: test tool $tool: the archive has no package $pkg; try: apt-cache policy $pkg" >&2
        return 1
    fi
    for version in $versions; do
        mapfile -t set < <(pinned_set "$pkg" "$version")
        tried+=("$version")
        if "${apt_env[@]}" apt-get install --allow-downgrades "${apt_opts[@]}" "${set[@]}" >/dev/null; then
            echo "$version"
            return 0
        fi
        echo "  $tool: ${set[*]} did not install; trying the next version the archive offers" >&2
    done
    echo "error: test tool $tool: no version of $pkg installs from the archive (tried ${tried[*]}); try: apt-get install $pkg" >&2
    return 1
}

install_tool() {
    local tool="$1" pkg version service
    pkg="$(package_of "$tool")"
    version="$(installed_version "$pkg" || true)"
    if [[ -n "$version" ]] && all_binaries "$tool"; then
        echo "$pkg $version already installed"
        return 0
    fi
    need_root "$tool" "$pkg"
    echo "$tool: installing $pkg from the Debian archive (apt-get)"
    version="$(run_recipe "$tool")" || exit 1
    service="$(service_of "$tool")"
    if [[ -n "$service" ]]; then
        systemctl disable --now "$service" >/dev/null 2>&1 || service "$service" stop >/dev/null 2>&1 || true
    fi
    all_binaries "$tool" || { echo "error: test tool $tool: $pkg $version installed but $(binaries_of "$tool") not all on PATH; try: apt-get install --reinstall $pkg" >&2; exit 1; }
    echo "$pkg $version installed"
}

all_binaries() {
    local bin
    for bin in $(binaries_of "$1"); do command -v "$bin" >/dev/null 2>&1 || return 1; done
}

# Every version the archive offers is dry-run, so a fallback that would not install shows here
# before the day it is needed; the check fails when none would.
check_tool() {
    local tool="$1" pkg version ok=0
    pkg="$(package_of "$tool")"
    apt_update >/dev/null 2>&1 || { echo "error: check: apt-get update failed" >&2; return 1; }
    for version in $(archive_versions "$pkg"); do
        mapfile -t set < <(pinned_set "$pkg" "$version")
        if apt-get install -s --reinstall --allow-downgrades "${apt_opts[@]}" "${set[@]}" >/dev/null 2>&1; then
            echo "check: $tool: ${set[*]} installs from today's archive"
            ok=1
        else
            echo "check: $tool: ${set[*]} would NOT install" >&2
        fi
    done
    [[ $ok == 1 ]] || { echo "error: test tool $tool: no version of $pkg installs from the archive; try: apt-get install $pkg" >&2; return 1; }
}

summary_tool() {
    local tool="$1" pkg version bin where=()
    pkg="$(package_of "$tool")"
    version="$(installed_version "$pkg" || true)"
    for bin in $(binaries_of "$tool"); do where+=("$(command -v "$bin" || echo "$bin:missing")"); done
    printf '%-44s %-40s %s\n' "$pkg (Debian)" "$([[ -n "$version" ]] && echo "$pkg=$version" || echo 'not installed')" "${where[*]}"
}

cmd="${1:-}"
shift || true
[[ $# -gt 0 ]] || { echo "usage: $0 install|check|summary TOOL..." >&2; exit 2; }
status=0
for tool in "$@"; do
    package_of "$tool" >/dev/null
    case "$cmd" in
    install) install_tool "$tool" ;;
    check) check_tool "$tool" || status=1 ;;
    summary) summary_tool "$tool" ;;
    *) echo "usage: $0 install|check|summary TOOL..." >&2; exit 2 ;;
    esac
done
exit $status
