package autonatv2

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

type recTracer struct {
	mu             sync.Mutex
	server, client []string
}

func (r *recTracer) ServerRequest(res string) {
	r.mu.Lock()
	r.server = append(r.server, res)
	r.mu.Unlock()
}
func (r *recTracer) ClientCheck(res string) {
	r.mu.Lock()
	r.client = append(r.client, res)
	r.mu.Unlock()
}

func TestTracer(t *testing.T) {
	for _, tc := range []struct {
		name           string
		addrs          []ma.Multiaddr
		dialErr        error
		server, client string
	}{
		{"reachable", []ma.Multiaddr{clientAddr}, nil, "ok", "reachable"},
		{"dial fails", []ma.Multiaddr{clientAddr}, errors.New("refused"), "dial_error", "unreachable"},
		{"nothing dialable", []ma.Multiaddr{ma.StringCast("/ip4/10.0.0.1/tcp/1")}, nil, "refused", "refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			tr := &recTracer{}
			n := newTestNet(t, ServerConfig{Tracer: tr}, ClientConfig{Tracer: tr})
			n.dialErr = tc.dialErr
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			n.client.Check(ctx, n.serverID, tc.addrs)
			n.event() // the server traced before it told OnEvent
			tr.mu.Lock()
			defer tr.mu.Unlock()
			if fmt.Sprint(tr.server, tr.client) != fmt.Sprint([]string{tc.server}, []string{tc.client}) {
				t.Fatalf("traced server %v client %v, want %s and %s", tr.server, tr.client, tc.server, tc.client)
			}
		})
	}
}

func TestServerResult(t *testing.T) {
	for _, tc := range []struct {
		e    ServerEvent
		want string
	}{
		{ServerEvent{}, "error"},
		{ServerEvent{Responded: true, Status: StatusOK, DialStatus: DialStatusOK, Err: errors.New("write failed")}, "error"},
		{ServerEvent{Responded: true, Status: StatusRequestRejected}, "rejected"},
		{ServerEvent{Responded: true, Status: StatusDialRefused}, "refused"},
		{ServerEvent{Responded: true, Status: StatusInternalError}, "internal_error"},
		{ServerEvent{Responded: true, Status: StatusOK, DialStatus: DialStatusOK}, "ok"},
		{ServerEvent{Responded: true, Status: StatusOK, DialStatus: DialStatusDialError}, "dial_error"},
		{ServerEvent{Responded: true, Status: StatusOK, DialStatus: DialStatusDialBackError}, "dial_back_error"},
	} {
		if got := serverResult(&tc.e); got != tc.want {
			t.Errorf("serverResult(%+v) = %s, want %s", tc.e, got, tc.want)
		}
	}
}
