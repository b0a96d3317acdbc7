#!/bin/sh
# check.sh PROGRAM EXPECTED LOG: run the program, compare its output, keep the log.
set -u
"./$1" > actual.txt 2>&1
status=$?
if [ "$status" -ne 0 ]; then echo "FAIL: $1 exited with $status"; cat actual.txt; exit 1; fi
if ! diff -u "$2" actual.txt; then echo "FAIL: output differs"; exit 1; fi
{ echo "PASS: $1"; cat actual.txt; } > "$3"
cat "$3"
