# variant.sh - sourced by the real-binary test scripts after preamble.sh (BUILD, SAN, LIB set).
# Sets VARIANT (release or asan), PRELOAD (what LD_PRELOAD must hold: libasan has to come
# first), SAN_ENV (the sanitizer options, as env assignments), PY (the python3 the suites
# run) and ODD_DD (dd, or under ASan a python stand-in with dd's arguments: libasan refuses
# dd's own aligned_alloc(4096, 777) for an odd block size), prints the suite's first
# line, and ends the run with a failing summary when the library is missing.
# Argument: the suite's name.
if [ "${SAN:-}" = asan ]; then
    VARIANT=asan
    PRELOAD="$(gcc -print-file-name=libasan.so) $LIB"
else
    VARIANT=release
    PRELOAD=$LIB
fi
PY=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || command -v python3)
ODD_DD=dd
[ "$VARIANT" = asan ] && ODD_DD="$PY $(dirname "${BASH_SOURCE[0]}")/direct/odd_dd.py"
# valgrind_usable LABEL: true if valgrind can run the suite's programs here; else LABEL is
# skipped (valgrind and the sanitizers do not mix; valgrind comes with make deps).
valgrind_usable() {
    if [ "$VARIANT" != release ]; then
        skip "$1" "not with $VARIANT"
    elif ! command -v valgrind >/dev/null; then
        skip "$1" "valgrind is not installed (make deps)"
    else
        return 0
    fi
    return 1
}
SAN_ENV=(ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1)
echo "# $1, variant: $VARIANT ($LIB)"
if [ ! -f "$LIB" ]; then
    echo "not ok - library $LIB exists (run make first)"
    echo "0 passed, 1 failed"
    exit 1
fi
