#!/bin/bash
# tidy.sh - house-rule checks over the tracked C sources (STYLE 10):
#   - no line over 120 columns, no file over 2,500 lines;
#   - no strcpy, strcat, sprintf, vsprintf, gets, atoi, atol (use the
#     bounded or checked forms);
#   - no FIXME (TODO(reason) is allowed);
#   - only /* */ comments in C files.
# The exception list below may only shrink.
set -u
cd "$(dirname "$0")/.."

EXCEPTIONS=(
)

fail=0
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find src include tests bench cluster -name '*.[ch]')
for f in $files; do
	[ -f "$f" ] || continue
	for e in "${EXCEPTIONS[@]:-}"; do [ "$f" = "$e" ] && continue 2; done
	lines=$(wc -l < "$f")
	if [ "$lines" -gt 2500 ]; then
		echo "$f: $lines lines (limit 2500)"
		fail=1
	fi
	awk -v f="$f" '{ gsub(/\t/, "        "); if (length($0) > 120) { printf "%s:%d: %d columns (limit 120)\n", f, NR, length($0); bad=1 } }
		END { exit bad }' "$f" || fail=1
	if grep -nE '\b(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol)\s*\(' "$f" | grep -vE 'snprintf|vsnprintf'; then
		echo "$f: banned call (use snprintf / strtol-family with checks)"
		fail=1
	fi
	if grep -n 'FIXME' "$f"; then
		echo "$f: FIXME (use TODO(reason))"
		fail=1
	fi
	if grep -nE '^\s*//|[;{}]\s*//' "$f" | grep -v 'http' ; then
		echo "$f: C++-style comment (use /* */)"
		fail=1
	fi
done
exit $fail
