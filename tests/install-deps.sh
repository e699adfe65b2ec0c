#!/usr/bin/env bash
# Install the Debian packages s3shim needs to build, test and benchmark: the build and
# test packages here, then the S3 rig's (Swift, nginx, aws/curl/s3fs/rclone clients).
# Idempotent and quiet when everything is already there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
PKGS=(gcc make libc6-dev pkg-config libcmocka-dev uthash-dev liburing-dev libcurl4-openssl-dev
      libssl-dev libexpat1-dev libseccomp-dev python3 coreutils tar gzip findutils diffutils valgrind procps
      util-linux mount e2fsprogs fio go-md2man sqlite3 zip unzip git rsync python3-numpy libblkid-dev libisal-dev fdisk
      bzip2 zstd
      chromium gdb) # chromium: tests/oplog/ab.sh renders the `s3shim ab` HTML report headless;
      # gdb: tests/capped.sh prints the stacks of a check that hung
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "deps: all ${#PKGS[@]} build and test packages present"
else
    echo "deps: installing ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    echo "deps: done"
fi
"$here/s3rig/install.sh"
