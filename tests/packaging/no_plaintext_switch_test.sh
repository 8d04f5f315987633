#!/bin/bash
# The installed daemons carry no way to turn encryption off: the marker the
# plaintext bench twins agree on (replicator/wire/plaintext_bench_on.cpp) is
# in neither binary. When the twin is built too, it must carry the marker,
# so that this check is seen to find it where it is.
# usage: no_plaintext_switch_test.sh SOURCE_OF_MARKER PRODUCT_BINARY [TWIN_BINARY]
set -u
marker=$(sed -n 's/.*return "\(intermezzo-plaintext[^"]*\)";.*/\1/p' "$1")
[ -n "$marker" ] || { echo "no marker found in $1"; exit 1; }
if grep -qaF "$marker" "$2"; then
    echo "$2 carries '$marker': it can carry frames in the clear"
    exit 1
fi
if [ $# -ge 3 ] && [ -e "$3" ] && ! grep -qaF "$marker" "$3"; then
    echo "$3 does not carry '$marker': this check would not find it"
    exit 1
fi
echo "$2: no '$marker'"
