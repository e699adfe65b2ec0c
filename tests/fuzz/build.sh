#!/usr/bin/env bash
# build.sh [standalone|libfuzzer] - build the core/s3/s3_xml.c fuzz harness into build/fuzz/.
#
# standalone (default): any C compiler, ASan+UBSan, with the harness's own bounded-time
#                       mutation driver -> build/fuzz/fuzz_s3_xml
# libfuzzer:            clang -fsanitize=fuzzer (coverage-guided) -> build/fuzz/fuzz_s3_xml_lf
# The harness compiles core/s3/s3_xml.c itself, so it needs nothing else from the tree.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-standalone}
out=build/fuzz
mkdir -p "$out"
flags=(-std=gnu11 -g -O1 -fno-omit-frame-pointer -D_GNU_SOURCE
       -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter)
src=(tests/fuzz/fuzz_s3_xml.c core/s3/s3_xml.c)
case "$mode" in
standalone)
    "${CC:-cc}" "${flags[@]}" -fsanitize=address,undefined -fno-sanitize-recover=undefined \
        -o "$out/fuzz_s3_xml" "${src[@]}" -lexpat
    echo "$out/fuzz_s3_xml" ;;
libfuzzer)
    "${CLANG:-clang}" "${flags[@]}" -DS3_XML_LIBFUZZER \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -o "$out/fuzz_s3_xml_lf" "${src[@]}" -lexpat
    echo "$out/fuzz_s3_xml_lf" ;;
*)
    echo "usage: $0 [standalone|libfuzzer]" >&2
    exit 2 ;;
esac
