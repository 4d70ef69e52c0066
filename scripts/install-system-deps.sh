#!/usr/bin/env bash
# install-system-deps.sh — install the Debian packages trustyard's test suite
# needs (container clients, reference registry, PostgreSQL, OpenLDAP, load tools).
#
# Idempotent: a package is installed only when one of the commands (or files)
# it provides is missing. Runs `apt-get update` only when the package lists
# are empty or an install fails. Retries while another apt/dpkg holds the lock.
# Must run as root on Debian 12. Progress goes to stderr.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
APT_UPDATED=0
APT_TRIES="${APT_TRIES:-8}"
APT_RETRY_SLEEP="${APT_RETRY_SLEEP:-10}"

log() { printf '[install-system-deps] %s\n' "$*" >&2; }

# package -> what it must provide: commands, or absolute paths (globs allowed)
PACKAGES=(skopeo buildah podman umoci docker-registry postgresql wrk
          apache2-utils curl debootstrap git ca-certificates slapd ldap-utils rpm
          # the binary detectors' tests: Go toolchain, C toolchain, real libraries
          golang-go gcc binutils libc6-dev zlib1g-dev libsqlite3-dev busybox-static libssl3
          libcurl4 libbz2-1.0 xz-utils libpng16-16 openssh-client libpcre2-8-0)
provides() {
  case "$1" in
    docker-registry) echo "docker-registry" ;;
    postgresql)      echo "/usr/lib/postgresql/*/bin/initdb /usr/lib/postgresql/*/bin/pg_ctl" ;;
    apache2-utils)   echo "ab htpasswd" ;;
    slapd)           echo "/usr/sbin/slapd" ;;
    ldap-utils)      echo "ldapadd ldapmodify" ;;
    rpm)             echo "rpmbuild rpm" ;;
    golang-go)       echo "go" ;;
    binutils)        echo "objcopy strip" ;;
    libc6-dev)       echo "/usr/include/stdio.h" ;;
    zlib1g-dev)      echo "/usr/include/zlib.h" ;;
    libsqlite3-dev)  echo "/usr/include/sqlite3.h" ;;
    busybox-static)  echo "/bin/busybox" ;;
    libssl3)         echo "/usr/lib/*/libcrypto.so.3" ;;
    libcurl4)        echo "/usr/lib/*/libcurl.so.4" ;;
    libbz2-1.0)      echo "/usr/lib/*/libbz2.so.1.0" ;;
    xz-utils)        echo "xz" ;;
    libpng16-16)     echo "/usr/lib/*/libpng16.so.16" ;;
    openssh-client)  echo "ssh" ;;
    libpcre2-8-0)    echo "/usr/lib/*/libpcre2-8.so.0" ;;
    ca-certificates) echo "update-ca-certificates /etc/ssl/certs/ca-certificates.crt" ;;
    *)               echo "$1" ;;
  esac
}

have() {  # have CMD-OR-PATH: true when the command or (globbed) file exists
  local item="$1" match
  if [[ "$item" == /* ]]; then
    for match in $item; do [ -e "$match" ] && return 0; done
    return 1
  fi
  command -v "$item" >/dev/null 2>&1 || [ -x "/usr/sbin/$item" ] || [ -x "/sbin/$item" ]
}

package_missing() {  # package_missing PKG: true when any of its items is absent
  local item
  for item in $(provides "$1"); do
    have "$item" || return 0
  done
  return 1
}

lists_empty() {
  [ -z "$(find /var/lib/apt/lists -maxdepth 1 -type f ! -name lock 2>/dev/null | head -n 1)" ]
}

apt_update() {
  log "apt-get update"
  if apt-get -o DPkg::Lock::Timeout=120 update -q >&2; then APT_UPDATED=1; return 0; fi
  return 1
}

apt_install() {  # apt_install PKG...: install with retries (dpkg lock, stale lists)
  local try
  for try in $(seq 1 "$APT_TRIES"); do
    if [ "$APT_UPDATED" = 0 ] && lists_empty; then apt_update || true; fi
    log "apt-get install $* (try $try/$APT_TRIES)"
    if apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=120 "$@" >&2; then
      return 0
    fi
    [ "$try" -lt "$APT_TRIES" ] || break
    log "apt-get install failed; retrying in ${APT_RETRY_SLEEP}s"
    if [ "$APT_UPDATED" = 0 ]; then apt_update || true; fi
    sleep "$APT_RETRY_SLEEP"
  done
  log "giving up on: $*"
  return 1
}

main() {
  [ "$(id -u)" = 0 ] || { log "must run as root"; exit 1; }
  command -v apt-get >/dev/null || { log "apt-get not found (Debian/Ubuntu only)"; exit 1; }
  local pkg missing=()
  for pkg in "${PACKAGES[@]}"; do
    if package_missing "$pkg"; then missing+=("$pkg"); fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "all present: ${PACKAGES[*]}"
    return 0
  fi
  log "missing: ${missing[*]}"
  apt_install "${missing[@]}"
  for pkg in "${missing[@]}"; do
    if package_missing "$pkg"; then log "still missing after install: $pkg"; exit 1; fi
  done
  log "installed: ${missing[*]}"
}

# allow `source`-ing the functions (for testing) without running main
if [ "${BASH_SOURCE[0]}" = "$0" ]; then main "$@"; fi
