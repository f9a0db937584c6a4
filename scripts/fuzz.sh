#!/usr/bin/env bash
# Runs every FuzzXxx target of the module briefly (FUZZTIME, default 5s), and
# fails when the targets found differ from scripts/fuzz-targets.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-5s}
# Go 1.26's fuzz coordinator can report a bare "context deadline exceeded" as a
# failure when -fuzztime ends while a worker is mid-call (go.dev/issue/75804;
# seen in CI on FuzzCertificate, no crasher written). Go 1.27 fixed it, so the
# fuzz runs use that toolchain, which the Go proxy serves (about 76 MB, once).
export GOTOOLCHAIN=${FUZZ_GOTOOLCHAIN:-go1.27.3}
found=$(mktemp)
trap 'rm -f "$found"' EXIT
for pkg in $(go list ./...); do
	for target in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
		echo "$pkg $target" >>"$found"
	done
done
if ! diff <(grep -v '^#' scripts/fuzz-targets.txt | sort) <(sort "$found"); then
	echo "fuzz targets differ from scripts/fuzz-targets.txt (< listed only, > found only)" >&2
	exit 1
fi
n=0
while read -r pkg target; do
	echo "== fuzz $pkg $target ($fuzztime)"
	go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
	n=$((n + 1))
done <"$found"
echo "fuzzed $n targets"
