#!/usr/bin/env bash
# fuzz.sh runs every fuzz target in the module, one at a time, for FUZZTIME
# each (default 30s). New crashers are written to the package's
# testdata/fuzz/<FuzzName>/ and should be committed with the fix.
#
#   FUZZTIME=5m scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fuzztime="${FUZZTIME:-30s}"
found=0
failed=()
# Only packages with test files can hold fuzz targets.
for pkg in $(go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' ./...); do
	for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		found=$((found + 1))
		echo "=== fuzz $pkg $target for $fuzztime"
		if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"; then
			failed+=("$pkg.$target")
		fi
	done
done
if [[ $found -eq 0 ]]; then
	echo "fuzz.sh: no fuzz targets found"
fi
# Keep going after a failure so one run reports every failing target.
if [[ ${#failed[@]} -gt 0 ]]; then
	echo "fuzz.sh: failed: ${failed[*]}" >&2
	exit 1
fi
