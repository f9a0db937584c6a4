package daemon

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

type traced struct {
	typ string
	ok  bool
}

// recTracer passes the calls on; a request is traced on the daemon's
// goroutine, possibly after the client read the answer.
type recTracer struct{ c chan traced }

func (r *recTracer) Request(typ string, err error) { r.c <- traced{typ, err == nil} }

func TestTracer(t *testing.T) {
	leakcheck.Check(t)
	tr := &recTracer{c: make(chan traced, 10)}
	f := start(t, &Config{Tracer: tr})
	expectOK(t, f.roundTrip(t, []byte{0x08, 0x00}))
	expectOK(t, f.roundTrip(t, encRequest(reqListPeers, 0, nil)))
	expectError(t, f.roundTrip(t, encRequest(reqDHT, 5, []byte{0x08, 0x00})), "not supported")
	expectError(t, f.roundTrip(t, encRequest(42, 0, nil)), "unknown request type")
	c := f.dial(t)
	c.Write([]byte{0x03, 0xff, 0xff, 0xff})
	expectError(t, readResponse(t, c), "malformed")

	want := []traced{{"identify", true}, {"list_peers", true}, {"dht", false}, {"unknown", false}, {"malformed", false}}
	var got []traced
	timeout := time.After(5 * time.Second)
	for len(got) < len(want) {
		select {
		case e := <-tr.c:
			got = append(got, e)
		case <-timeout:
			t.Fatalf("traced %v, want %v", got, want)
		}
	}
	cmp := func(a, b traced) int { return strings.Compare(a.typ, b.typ) }
	slices.SortFunc(got, cmp)
	slices.SortFunc(want, cmp)
	if !slices.Equal(got, want) {
		t.Fatalf("traced %v, want %v", got, want)
	}
}
