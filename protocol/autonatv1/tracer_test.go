package autonatv1

import (
	"strings"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/internal/streamtest"
)

type recTracer struct {
	mu  sync.Mutex
	got []string
}

func (r *recTracer) ServerRequest(res string) { r.mu.Lock(); r.got = append(r.got, res); r.mu.Unlock() }

func TestTracer(t *testing.T) {
	leakcheck.Check(t)
	me := streamtest.PeerID(t, "client")
	for _, tt := range []struct {
		name  string
		ok    func(ma.Multiaddr) bool
		addrs []string
		self  string
		want  string
	}{
		{"dialed back", func(ma.Multiaddr) bool { return true }, []string{tcp(clientIP, 4001)}, "", "ok"},
		{"dial failed", func(ma.Multiaddr) bool { return false }, []string{tcp(clientIP, 4001)}, "", "dial_error"},
		{"refused", nil, []string{tcp(victimIP, 4001)}, "", "refused"},
		{"bad request", nil, []string{tcp(clientIP, 4001)}, "other", "bad_request"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := &recTracer{}
			s := New(&fakeHost{ok: tt.ok}, Config{Tracer: tr, DialTimeout: time.Millisecond})
			defer s.Close()
			self := me
			if tt.self != "" {
				self = streamtest.PeerID(t, tt.self)
			}
			ask(t, s, conn{client: me, remote: tcp(clientIP, 50123)}, self, addrs(tt.addrs...))
			s.Close() // waits for the handler, which traced before returning
			tr.mu.Lock()
			defer tr.mu.Unlock()
			if strings.Join(tr.got, ",") != tt.want {
				t.Fatalf("traced %v, want [%s]", tr.got, tt.want)
			}
		})
	}
}

func TestResult(t *testing.T) {
	for _, tc := range []struct {
		e    Event
		want string
	}{
		{Event{}, "error"},
		{Event{Answered: true, Status: StatusOK}, "ok"},
		{Event{Answered: true, Status: StatusDialError}, "dial_error"},
		{Event{Answered: true, Status: StatusDialRefused}, "refused"},
		{Event{Answered: true, Status: StatusBadRequest}, "bad_request"},
		{Event{Answered: true, Status: StatusInternalError}, "internal_error"},
	} {
		if got := result(&tc.e); got != tc.want {
			t.Errorf("result(%+v) = %s, want %s", tc.e, got, tc.want)
		}
	}
}
