#!/usr/bin/env bash
# install.sh [GROUP...] - install the Debian packages the S3 tests and benchmarks use.
#
#   GROUP   swift    OpenStack Swift (proxy, object, container, account) + memcached
#           nginx    nginx-light (static server with Range, limit_rate)
#           clients  curl, awscli (v2, /usr/bin/aws), s3fs, rclone, fuse3, python3
#           all      every group (the default)
#
# Idempotent: asks dpkg first and does not run apt at all when every package of the
# chosen groups is already installed.  Installing needs root (or sudo).
#
# Service starts: on a host where dpkg's postinst may start the packaged daemons
# (systemd), the stock swift-*/memcached/nginx services would come up on their default
# ports (swift 6200-6202 and 8080, memcached 11211, nginx 80) with /etc configs.  While
# apt runs, a temporary /usr/sbin/policy-rc.d (exit 101 = "do not start") is put in
# place when none exists, so nothing is started; it is removed again afterwards.  Our
# own servers use their own configs, ports and directories anyway.
set -euo pipefail

declare -A GROUP_PKGS=(
    [swift]="swift swift-proxy swift-object swift-container swift-account python3-swift memcached"
    [nginx]="nginx-light"
    [clients]="curl awscli s3fs rclone fuse3 python3"
)
groups=("$@")
[ ${#groups[@]} -gt 0 ] || groups=(all)
pkgs=()
for g in "${groups[@]}"; do
    case "$g" in
        all) pkgs+=(${GROUP_PKGS[swift]} ${GROUP_PKGS[nginx]} ${GROUP_PKGS[clients]}) ;;
        swift|nginx|clients) pkgs+=(${GROUP_PKGS[$g]}) ;;
        *) echo "install.sh: unknown group '$g' (swift, nginx, clients, all)" >&2; exit 2 ;;
    esac
done

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' \
        || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "s3rig install: all ${#pkgs[@]} packages present (${groups[*]})" >&2
    exit 0
fi

SUDO=()
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "s3rig install: not root and no sudo; missing: ${missing[*]}" >&2; exit 1; }
    SUDO=(sudo -n)
fi
echo "s3rig install: installing ${missing[*]}" >&2
t0=$SECONDS

POLICY=/usr/sbin/policy-rc.d
own_policy=0
restore() { if [ $own_policy = 1 ]; then "${SUDO[@]}" rm -f "$POLICY"; fi; }
trap restore EXIT
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\n# temporary, from s3shim tests/s3rig/install.sh\nexit 101\n' \
        | "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 0755 "$POLICY"
    own_policy=1
fi

apt_install() {
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300 "${missing[@]}"
}
# An empty or stale package list makes the first attempt fail: update once, retry.
if ! apt_install > /tmp/s3rig-apt.$$.log 2>&1; then
    echo "s3rig install: apt-get install failed, running apt-get update and retrying" >&2
    "${SUDO[@]}" apt-get update -q -o DPkg::Lock::Timeout=300 >> /tmp/s3rig-apt.$$.log 2>&1 || true
    if ! apt_install >> /tmp/s3rig-apt.$$.log 2>&1; then
        tail -n 30 /tmp/s3rig-apt.$$.log >&2
        echo "s3rig install: FAILED (log /tmp/s3rig-apt.$$.log)" >&2
        exit 1
    fi
fi
rm -f /tmp/s3rig-apt.$$.log
echo "s3rig install: done in $((SECONDS - t0)) s" >&2
