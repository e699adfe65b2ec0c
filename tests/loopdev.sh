# shellcheck shell=bash
# loopdev.sh - the loop devices and mounts of the suites that need real block devices
# (sourced, W set). Sets have_loop (1 when this run may attach loop devices, else 0 and
# why says what is missing); new_loop attaches one; release_devices, which the suite's
# EXIT trap calls, unmounts and detaches everything recorded in MNTS and LOOPS.
LOOPS=()
MNTS=()
have_loop=1
why=""
if [ "$(id -u)" != 0 ]; then have_loop=0; why="not root"
elif ! command -v losetup >/dev/null || ! command -v mkfs.ext4 >/dev/null; then have_loop=0; why="no losetup/mkfs.ext4"
elif ! losetup -f >/dev/null 2>&1; then have_loop=0; why="no free loop device"; fi

# new_loop SIZE_MIB [SECTOR]: a loop device on a fresh sparse file under $W, in $dev
# (not called in a subshell: LOOPS must keep it). dev is empty when it failed.
new_loop() {
    local img=$W/img.${2:-4096}.$1.$RANDOM
    dev=""
    truncate -s "$1M" "$img" || return 1
    dev=$(losetup -f --show -b "${2:-4096}" "$img") || { dev=""; return 1; }
    LOOPS+=("$dev")
}
release_devices() {
    local m l
    for m in "${MNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
    for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null; done
}
