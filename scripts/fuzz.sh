#!/usr/bin/env bash
# Runs every FuzzXxx target, of the module and of the test/protodiff module,
# for FUZZTIME each (default 5s), and fails when the targets found differ
# from scripts/fuzz-targets.txt. Each run starts by replaying the target's
# committed corpus (testdata/fuzz/FuzzXxx), so a regression entry fails it.
#
# With -keep (make fuzz-long) every target runs even after one fails, and the
# inputs the fuzzer found interesting are copied from its cache into the
# package's testdata/fuzz/FuzzXxx: Go writes only crashers there and keeps the
# rest in $GOCACHE/fuzz, which no one commits. To keep the committed corpus
# small, files are added smallest first while the directory stays within
# FUZZ_CORPUS_BYTES (default 8192) per target; committed files are never
# removed or rewritten (their names are hashes of their contents).
#
# FUZZ_ONLY (an extended regexp matched against "package target") limits the
# run to some targets, FUZZ_PARALLEL sets go test -parallel (the fuzz workers;
# default GOMAXPROCS), and with -keep each finished target appends a line to
# docs/fuzz-log.tsv (date, toolchain, package, target, fuzztime, workers,
# result, execs), the record of how long each codec has been fuzzed.
set -euo pipefail
cd "$(dirname "$0")/.."
keep=false
if [ "${1:-}" = -keep ]; then
	keep=true
fi
fuzztime=${FUZZTIME:-5s}
budget=${FUZZ_CORPUS_BYTES:-8192}
# Go 1.26's fuzz coordinator can report a bare "context deadline exceeded" as a
# failure when -fuzztime ends while a worker is mid-call (go.dev/issue/75804;
# seen in CI on FuzzCertificate, no crasher written). Go 1.27 fixed it, so the
# fuzz runs use that toolchain, which the Go proxy serves (about 76 MB, once).
export GOTOOLCHAIN=${FUZZ_GOTOOLCHAIN:-go1.27.3}
# Modules with fuzz targets: the library, and the differential fuzzing of its
# protobuf codecs against google.golang.org/protobuf, which has a go.mod of
# its own so that the library does not depend on protobuf.
modules=". test/protodiff"
found=$(mktemp)
trap 'rm -f "$found"' EXIT
for mod in $modules; do
	for pkg in $(cd "$mod" && go list ./...); do
		for target in $(cd "$mod" && go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
			echo "$pkg $target $mod" >>"$found"
		done
	done
done
if ! diff <(grep -v '^#' scripts/fuzz-targets.txt | sort) <(cut -d' ' -f1,2 "$found" | sort); then
	echo "fuzz targets differ from scripts/fuzz-targets.txt (< listed only, > found only)" >&2
	exit 1
fi

# keep_corpus copies the cached corpus of target in pkg (in module mod) into
# the package's testdata, within the size budget.
keep_corpus() {
	local pkg=$1 target=$2 mod=$3
	local cache dir used added=0 size name
	cache="$(go env GOCACHE)/fuzz/$pkg/$target"
	[ -d "$cache" ] || return 0
	dir="$(cd "$mod" && go list -f '{{.Dir}}' "$pkg")/testdata/fuzz/$target"
	mkdir -p "$dir"
	used=$(find "$dir" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
	while read -r size name; do
		[ -e "$dir/$name" ] && continue
		[ $((used + size)) -le "$budget" ] || break
		cp "$cache/$name" "$dir/$name"
		used=$((used + size))
		added=$((added + 1))
	done < <(find "$cache" -maxdepth 1 -type f -printf '%s %f\n' | sort -n)
	echo "   kept $added new corpus entries ($used bytes in ${dir#"$PWD"/})"
}

if [ -n "${FUZZ_ONLY:-}" ]; then
	grep -E -- "$FUZZ_ONLY" "$found" >"$found.only" || true
	mv "$found.only" "$found"
fi
parallel=()
workers=$(nproc)
if [ -n "${FUZZ_PARALLEL:-}" ]; then
	parallel=(-parallel "$FUZZ_PARALLEL")
	workers=$FUZZ_PARALLEL
fi
log=docs/fuzz-log.tsv
out=$(mktemp)
trap 'rm -f "$found" "$out"' EXIT
n=0
failed=()
while read -r pkg target mod; do
	echo "== fuzz $pkg $target ($fuzztime)"
	result=ok
	if ! (cd "$mod" && go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "${parallel[@]}" "$pkg") 2>&1 | tee "$out"; then
		result=FAIL
	fi
	if $keep; then
		# The last progress line says how many inputs were run.
		execs=$(grep -o 'execs: [0-9]*' "$out" | tail -1 | cut -d' ' -f2)
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$(go env GOVERSION)" \
			"$pkg" "$target" "$fuzztime" "$workers" "$result" "${execs:-0}" >>"$log"
	fi
	if [ $result = FAIL ]; then
		$keep || exit 1
		failed+=("$pkg $target")
		continue
	fi
	if $keep; then
		keep_corpus "$pkg" "$target" "$mod"
	fi
	n=$((n + 1))
done <"$found"
echo "fuzzed $n targets"
if [ ${#failed[@]} -gt 0 ]; then
	printf 'FAILED: %s\n' "${failed[@]}" >&2
	exit 1
fi
