#!/usr/bin/env bash
# format.sh - apply .clang-format to every C and C++ file of the tree, or,
# with --check, list the files it would change and exit 1 (the unit suite's
# `format` test runs that).  Generated and third-party files are not ours.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.c' '*.h' '*.cpp' '*.hpp' 2>/dev/null ||
        find core api server tests plugins bench tools -name '*.[ch]' -o -name '*.[ch]pp')
if [ "${1:-}" = "--check" ]; then
  bad=0
  for f in $files; do
    if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
      echo "not formatted: $f (tools/format.sh applies .clang-format)"
      bad=1
    fi
  done
  exit $bad
fi
clang-format -i $files
