# The README's test command is `make test`: set-up (installs what is missing
# when run as root on Debian, else says what to install), format and
# go.mod checks, vet, race-enabled unit and integration tests (interop with
# go-libp2p, js-libp2p and Chromium, the conformance peer), the bench
# module's own tests, the transport-interop slice (interop/matrix: tachyon
# HEAD and a pinned old commit, go-libp2p v0.51, v0.45, v0.36, js-libp2p 3.x;
# its results go to a temporary file, COMPATIBILITY.md is left alone), then
# short fuzz runs of every listed target.
GO ?= go
FUZZTIME ?= 5s

.PHONY: test setup check vet unit fuzz fuzz-long demo bench bench-check soak holepunch autonat dialing webrtcnat

test: setup check vet unit interop-ci fuzz

setup:
	bash scripts/setup.sh

# gofmt on every tracked Go file, and go.mod/go.sum tidy in all three modules.
check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) mod tidy -diff
	cd interop/golibp2p && $(GO) mod tidy -diff
	cd bench && $(GO) mod tidy -diff
	cd test/protodiff && $(GO) mod tidy -diff

vet:
	$(GO) vet ./...
	cd interop/golibp2p && $(GO) vet ./...
	cd bench && $(GO) vet ./...
	cd test/protodiff && $(GO) vet ./...

# Packages that measure time or throughput on the emulated network run
# without the race detector, whose slowdown would be measured too.
TIMED := ./testbed/... ./test/rtt/... ./test/adversary/... ./test/holepunch/... ./test/autonat/... ./test/dialing/... ./test/webrtcnat/...

unit:
	$(GO) test -race -timeout 30m -count=1 $$($(GO) list ./... | grep -v -e /testbed -e /test/rtt -e /test/adversary -e /test/holepunch -e /test/autonat -e /test/dialing -e /test/webrtcnat)
	$(GO) test -p 1 -timeout 15m -count=1 $(TIMED)
	cd bench && $(GO) test -race -timeout 10m -count=1 ./...
	cd test/protodiff && $(GO) test -race -timeout 10m -count=1 ./...

fuzz:
	FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

# Every fuzz target for FUZZTIME (5m unless given: make fuzz-long FUZZTIME=30s),
# one at a time; the inputs found are added to the packages' testdata/fuzz
# corpora (within FUZZ_CORPUS_BYTES per target, scripts/fuzz.sh), to commit.
fuzz-long:
	FUZZTIME=$(if $(filter command line environment,$(origin FUZZTIME)),$(FUZZTIME),5m) bash scripts/fuzz.sh -keep

demo:
	$(GO) run ./cmd/tachyon demo

# The regression gate: ratios tachyon/go-libp2p and tachyon/HTTP from short
# interleaved runs (GOMAXPROCS=1, median of per-round ratios), against
# bench/baseline.json; fails when one worsens by over 15 %. CI runs it after
# the tests (.ci/run). Refresh the baseline on purpose only, after a change
# meant to move a ratio: cd bench && go run ./cmd/p2pbench -write-baseline baseline.json
bench-check:
	cd bench && $(GO) run ./cmd/p2pbench -check baseline.json

# The full benchmark, written into BENCHMARKS.md and docs/bench/.
bench:
	cd bench && $(GO) run ./cmd/p2pbench -write ../BENCHMARKS.md

# The attack suite with each attack running 10 minutes against tachyon
# (about 3 hours; ADVERSARY_IMPLS=tachyon,go adds go-libp2p, twice as long).
# CI runs the same suite for a few seconds per attack in the unit target.
ADVERSARY_IMPLS ?= tachyon
soak:
	TACHYON_ADVERSARY_SOAK=1 TACHYON_ADVERSARY_IMPLS=$(ADVERSARY_IMPLS) $(GO) test -p 1 -timeout 8h -count=1 -v ./test/adversary

# Hole punching across emulated NATs, 20 attempts per cell (about 30
# minutes); prints the table for BENCHMARKS.md ("Hole punching") and
# writes it to HOLEPUNCH_TABLE. CI runs a reduced version in unit.
HOLEPUNCH_ATTEMPTS ?= 20
HOLEPUNCH_TABLE ?= /tmp/holepunch-table.md
holepunch:
	TACHYON_HOLEPUNCH_ATTEMPTS=$(HOLEPUNCH_ATTEMPTS) TACHYON_HOLEPUNCH_TABLE=$(HOLEPUNCH_TABLE) $(GO) test -count=1 -timeout 2h -v -run TestHolePunch ./test/holepunch

# AutoNAT verdicts on emulated networks, all seven scenarios and all four
# (client, servers) cells, 5-minute soak with 2 % loss, AUTONAT_ROUNDS
# repetitions (about 10 minutes each); missed timing goals fail. Prints the
# tables for BENCHMARKS.md and COMPATIBILITY.md and writes them to
# AUTONAT_TABLE. CI runs a reduced version (one round, 60 s soak) in unit.
AUTONAT_ROUNDS ?= 3
AUTONAT_TABLE ?= /tmp/autonat-table.md
autonat:
	TACHYON_AUTONAT_FULL=1 TACHYON_AUTONAT_ROUNDS=$(AUTONAT_ROUNDS) TACHYON_AUTONAT_TABLE=$(AUTONAT_TABLE) $(GO) test -count=1 -timeout 2h -v -run TestAutoNAT ./test/autonat

# Smart dialing end to end (test/dialing): seven scenarios on the emulated
# network, 10 fresh tachyon and go-libp2p dialers each, plus the same-host
# learning runs; the markdown table for BENCHMARKS.md is written to
# DIALING_RESULTS. CI runs 5 dialers per scenario in unit.
DIALING_RESULTS ?= /tmp/dialing-results.md
dialing:
	TACHYON_DIALING_FULL=1 DIALING_RESULTS=$(DIALING_RESULTS) $(GO) test -count=1 -timeout 30m -v -run TestDialing ./test/dialing

# Browser-to-browser /webrtc across emulated NATs (test/webrtcnat): 10 dials
# behind endpoint-independent NATs, 3 behind symmetric ones, 16 MiB over
# /webrtc against /webrtc-direct, and js-libp2p in Node as the round-trip
# reference; tables written to WEBRTCNAT_TABLE. CI runs 2 dials in unit.
WEBRTCNAT_TABLE ?= /tmp/webrtcnat-table.md
webrtcnat:
	test -d interop/js/node_modules/@libp2p/webrtc || (cd interop/js && npm ci --no-audit --no-fund)
	TACHYON_WEBRTCNAT_FULL=1 TACHYON_WEBRTCNAT_TABLE=$(WEBRTCNAT_TABLE) $(GO) test -count=1 -timeout 30m -v -run TestWebRTCNAT ./test/webrtcnat

# The transport-interop matrix without docker (interop/matrix/README.md):
# native peers speaking the test-plans transport-interop contract through
# one redis-server. The slice (CI: tachyon HEAD and its pinned old commit,
# go-libp2p v0.51, v0.45, v0.36, js-libp2p 3.x in Node, every transport
# they share, both directions) and the full run (every go-libp2p version,
# js-libp2p 2.x, Chromium) each write interop/matrix/results-SET.json and
# their section of COMPATIBILITY.md (MATRIX_COMPAT= to leave it alone;
# MATRIX_RESULTS=FILE puts the JSON elsewhere).
# Unexpected failures and passes fail the target. Built peers are cached in
# MATRIX_CACHE (go-libp2p's cold builds take minutes each).
MATRIX_COMPAT ?= COMPATIBILITY.md
MATRIX_CACHE ?= $(HOME)/.cache/tachyon-interop-matrix
MATRIX_RESULTS ?=
.PHONY: interop-slice interop-full interop-ci
interop-ci:
	$(MAKE) interop-slice MATRIX_COMPAT= MATRIX_RESULTS=$${TMPDIR:-/tmp}/tachyon-interop-slice.json

interop-slice:
	$(GO) run ./interop/matrix -set slice -cache $(MATRIX_CACHE) -compat "$(MATRIX_COMPAT)" -results "$(MATRIX_RESULTS)"

interop-full:
	$(GO) run ./interop/matrix -set full -cache $(MATRIX_CACHE) -compat "$(MATRIX_COMPAT)" -results "$(MATRIX_RESULTS)"

# Latency: tachyon vs go-libp2p v0.51 in every seat against the slice's other
# peers, cells one at a time, MATRIX_REPEAT interleaved rounds; writes
# interop/matrix/latency-slice.json and COMPATIBILITY.md's latency table,
# fails if tachyon is slower beyond the samples' noise in a seat that
# interop/matrix/latency-known.txt does not accept. Run it on a quiet machine.
MATRIX_REPEAT ?= 7
.PHONY: interop-latency
interop-latency:
	$(GO) run ./interop/matrix -latency -set slice -repeat $(MATRIX_REPEAT) -cache $(MATRIX_CACHE) -compat "$(MATRIX_COMPAT)" -results "$(MATRIX_RESULTS)"
