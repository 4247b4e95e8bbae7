#!/bin/sh
# Rebuild bpf/gslbd_xdp.o from bpf/gslbd_xdp.c. The object is committed, so building gslbd
# needs no clang; run this after changing the C source (Debian: apt-get install clang-14), and
# commit both. tests/xdp_object.rs checks, where clang-14 is present, that they match.
set -eu
cd "$(dirname "$0")"
CLANG=${CLANG:-clang-14}
# asm/types.h lives under the host's multiarch directory.
"$CLANG" -target bpf -O2 -Wall -Werror -fno-ident -I"/usr/include/$(gcc -print-multiarch)" -c gslbd_xdp.c -o "${1:-gslbd_xdp.o}"
