#!/usr/bin/env bash
# tests/check-sys.sh - the engine reaches the kernel only through core/sys.h.
#
# libs3shim.so exports the file API it interposes (open, pread, fstat...). An engine object
# (core/**) that calls one of those symbols directly would go through the shim's own
# wrapper and the re-entrancy guard instead of straight to libc; this check lists, for
# every engine object of the build, the interposed symbols it still calls directly.
# core/sys.o alone may name them: it holds libc's functions as the table's initial values.
#
#   BUILD=build tests/check-sys.sh     (after `make`)
set -u
BUILD=${BUILD:-build}
LIB=$BUILD/libs3shim.so
pass=0 fail=0
[ -f "$LIB" ] || { echo "not ok - $LIB is built"; echo "0 passed, 1 failed"; exit 1; }
exported=$(mktemp)
trap 'rm -f "$exported"' EXIT
nm -D --defined-only "$LIB" | awk '$2 ~ /^[TWi]$/ {sub(/@.*/, "", $3); print $3}' | sort -u >"$exported"
n=$(wc -l <"$exported")
if [ "$n" -gt 100 ]; then
    echo "ok - $LIB exports $n interposed symbols"
    pass=$((pass + 1))
else
    echo "not ok - $LIB exports only $n symbols (expected the whole file API)"
    fail=$((fail + 1))
fi
objs=$(find "$BUILD/obj/core" -name '*.o' ! -name sys.o | sort)
for o in $objs; do
    src=${o#"$BUILD"/obj/}
    src=${src%.o}.c
    [ -f "$src" ] || continue # a stale object of a file that moved
    direct=$(comm -12 "$exported" <(nm "$o" | awk '$1 == "U" {print $2}' | sort -u) | tr '\n' ' ')
    if [ -z "$direct" ]; then
        pass=$((pass + 1))
    else
        echo "not ok - $src calls interposed symbols directly: ${direct% } (use sys.NAME, core/sys.h)"
        fail=$((fail + 1))
    fi
done
echo "# engine objects checked: $(echo "$objs" | wc -w)"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
