# The README's test command is `make test`: vet, race-enabled unit and
# integration tests (interop with go-libp2p included), then short fuzz runs.
GO ?= go
FUZZTIME ?= 5s

.PHONY: test vet unit fuzz demo

test: vet unit fuzz

vet:
	$(GO) vet ./...
	cd interop/golibp2p && $(GO) vet ./...

# Packages that measure time or throughput on the emulated network run
# without the race detector, whose slowdown would be measured too.
TIMED := ./testbed/... ./test/rtt/...

unit:
	$(GO) test -race -timeout 30m -count=1 $$($(GO) list ./... | grep -v -e /testbed -e /test/rtt)
	$(GO) test -p 1 -timeout 15m -count=1 $(TIMED)

fuzz:
	FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

demo:
	$(GO) run ./cmd/tachyon demo
