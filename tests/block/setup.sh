# shellcheck shell=bash
# setup.sh - what the smaller block:// test scripts share, sourced first with a short name
# and a title: the preamble, the variant line and report.sh; a work directory W on a
# filesystem that does O_DIRECT, removed at exit with every loop device tests/loopdev.sh
# attached; the mount point MP and the scratch file OUT.
#
#   . "$(dirname "$0")/setup.sh" NAME "TITLE"
set -u
export LC_ALL=C
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../preamble.sh
. "$HERE/../preamble.sh"
# shellcheck source=../variant.sh
. "$TOP/tests/variant.sh" "$2"
# shellcheck source=../report.sh
. "$TOP/tests/report.sh"
W=$(mktemp -d "${TMPDIR:-/var/tmp}/s3shim-$1.XXXXXX")
# shellcheck source=../loopdev.sh
. "$TOP/tests/loopdev.sh"
trap 'release_devices; rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
[ "$(stat -f -c %T "$W")" = tmpfs ] && bail "$W must be on a filesystem that does O_DIRECT (set TMPDIR)"
MP=/s3shim-$1-$$
OUT=$W/out.txt
