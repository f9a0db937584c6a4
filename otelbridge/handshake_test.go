package otelbridge

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/internal/streamtest"
	"github.com/tachyon-p2p/tachyon/upgrader"
)

func TestHandshakeSpans(t *testing.T) {
	p := streamtest.PeerID(t, "remote")
	addr := ma.StringCast("/ip4/192.0.2.1/tcp/4001")
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name     string
		h        upgrader.Handshake
		kind     trace.SpanKind
		result   string
		security string // "" : attribute absent
		early    bool
		err      bool
	}{
		{
			name: "outbound, muxer inside the security handshake",
			h: upgrader.Handshake{Dir: network.DirOutbound, Transport: "tcp", Security: "/tls/1.0.0", Muxer: "/yamux/1.0.0",
				EarlyMuxer: true, Peer: p, RemoteAddr: addr, Start: t0, Took: 3 * time.Millisecond},
			kind: trace.SpanKindClient, result: "success", security: "/tls/1.0.0", early: true,
		},
		{
			name: "inbound, timed out before a security protocol",
			h: upgrader.Handshake{Dir: network.DirInbound, Transport: "websocket", RemoteAddr: addr, Start: t0,
				Took: time.Second, Err: fmt.Errorf("reading: %w", context.DeadlineExceeded)},
			kind: trace.SpanKindServer, result: "timeout", err: true,
		},
		{
			name: "inbound, refused by the resource manager",
			h: upgrader.Handshake{Dir: network.DirInbound, Transport: "tcp", Security: "/noise", Peer: p, Start: t0,
				Took: time.Millisecond, Err: fmt.Errorf("conn scope: %w", upgrader.ErrRefused)},
			kind: trace.SpanKindServer, result: "refused", security: "/noise", err: true,
		},
		{
			name: "outbound, another peer answered",
			h: upgrader.Handshake{Dir: network.DirOutbound, Transport: "tcp", Security: "/noise", Peer: p, Start: t0,
				Took: time.Millisecond, Err: &network.PeerIDMismatchError{Expected: p, Actual: streamtest.PeerID(t, "other")}},
			kind: trace.SpanKindClient, result: "peer_id_mismatch", security: "/noise", err: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tracer, exp := newRecorder(t)
			tracer.HandshakeDone(tc.h)
			spans := exp.GetSpans()
			if len(spans) != 1 {
				t.Fatalf("%d spans, want 1", len(spans))
			}
			s := spans[0]
			if s.Name != SpanHandshake || s.SpanKind != tc.kind {
				t.Errorf("span %q of kind %v, want %q of kind %v", s.Name, s.SpanKind, SpanHandshake, tc.kind)
			}
			if !s.StartTime.Equal(tc.h.Start) || !s.EndTime.Equal(tc.h.Start.Add(tc.h.Took)) {
				t.Errorf("span %v..%v, want %v..%v", s.StartTime, s.EndTime, tc.h.Start, tc.h.Start.Add(tc.h.Took))
			}
			a := attrs(s.Attributes)
			if got := a[AttrResult].AsString(); got != tc.result {
				t.Errorf("result %q, want %q", got, tc.result)
			}
			if got := a[AttrSecurity].AsString(); got != tc.security {
				t.Errorf("security %q, want %q", got, tc.security)
			}
			if got := a[AttrEarlyMuxer].AsBool(); got != tc.early {
				t.Errorf("early muxer %v, want %v", got, tc.early)
			}
			if got := a[AttrConnTransport].AsString(); got != tc.h.Transport {
				t.Errorf("transport %q, want %q", got, tc.h.Transport)
			}
			if got := s.Status.Code == codes.Error; got != tc.err {
				t.Errorf("status %v, want error %v", s.Status, tc.err)
			}
			if _, ok := a[AttrPeer]; ok != (tc.h.Peer != "") {
				t.Errorf("peer attribute present %v, want %v", ok, tc.h.Peer != "")
			}
		})
	}
	var nilTracer *Tracer
	nilTracer.HandshakeDone(upgrader.Handshake{Err: errors.New("x")}) // records nothing, no panic
}
