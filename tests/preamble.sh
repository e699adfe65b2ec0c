# preamble.sh - how every real-binary test script starts (sourced right after `set -u`).
# Clears S3SHIM_* and LD_PRELOAD, so that nothing of ours or of a surrounding run leaks
# into the programs under test, and sets TOP (the repository), BUILD (made absolute;
# default build), SAN (asan or empty), LIB (the library under test) and TOOL (the
# s3shim command). Then the script sources variant.sh with its name.
for v in $(compgen -e); do
    case $v in S3SHIM_*) unset "$v" ;; esac
done
unset LD_PRELOAD
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-build}
SAN=${SAN:-}
case $BUILD in /*) ;; *) BUILD=$TOP/$BUILD ;; esac
LIB=$BUILD/libs3shim.so
TOOL=$BUILD/s3shim
