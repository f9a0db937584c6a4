package dialrank_test

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/dialrank"
)

// A dial to a dual-stack peer whose UDP is blocked on our side, before the
// node has learned it: QUIC on IPv6, QUIC on IPv4 one gap later, then the
// named TCP forms; tcp/tls on IPv6 connects.
func ExampleTrace() {
	p, _ := peer.Decode("12D3KooWGRUVh2HTwJHRjfyuYJfkgjiTu5yWKAVt7zZpSWWJqD7z")
	var addrs []ma.Multiaddr
	for _, s := range []string{
		"/ip4/203.0.113.7/tcp/4001", "/ip4/203.0.113.7/tcp/4001/tls", "/ip4/203.0.113.7/udp/4001/quic-v1",
		"/ip6/2001:db8::7/tcp/4001/tls", "/ip6/2001:db8::7/udp/4001/quic-v1", "/ip4/192.168.1.7/tcp/4001",
	} {
		addrs = append(addrs, ma.StringCast(s))
	}
	start := time.Unix(1_700_000_000, 0)
	plan := dialrank.Plan(addrs, dialrank.Knowledge{Peer: p, Now: start})
	tr := dialrank.NewTrace(p, plan, start)
	q6 := tr.Started(plan.Dials[0], start)
	q4 := tr.Started(plan.Dials[1], start.Add(250*time.Millisecond))
	t6 := tr.Started(plan.Dials[2], start.Add(500*time.Millisecond))
	t4 := tr.Started(plan.Dials[3], start.Add(500*time.Millisecond))
	tr.Finished(t4, start.Add(540*time.Millisecond), fmt.Errorf("dial tcp: %w", syscall.ECONNREFUSED))
	tr.Finished(t6, start.Add(580*time.Millisecond), nil)
	tr.Done(start.Add(580*time.Millisecond), nil)
	_, _ = q6, q4
	fmt.Print(tr)
	// Output:
	// dial 12D3KooWGRUVh2HTwJHRjfyuYJfkgjiTu5yWKAVt7zZpSWWJqD7z: 4 ranked, 2 skipped, connected via /ip6/2001:db8::7/tcp/4001/tls after 580ms
	//   +0s      /ip6/2001:db8::7/udp/4001/quic-v1 [quic] quic first, wave 1; next wave after 250ms (RTT unknown) -> started +0s, overtaken after 580ms
	//   +250ms   /ip4/203.0.113.7/udp/4001/quic-v1 [quic] quic/ip4, ip4 after ip6 (happy eyeballs), wave 2; next wave after 250ms (RTT unknown) -> started +250ms, overtaken after 330ms
	//   +500ms   /ip6/2001:db8::7/tcp/4001/tls [tcp/tls] tcp/tls after quic on the same host, ip6 after ip4 (happy eyeballs), wave 3; next wave after 250ms (RTT unknown) -> started +500ms, connected after 80ms
	//   +500ms   /ip4/203.0.113.7/tcp/4001/tls [tcp/tls] tcp/tls after quic on the same host, ip4 after ip6 (happy eyeballs), wave 3; next wave after 250ms (RTT unknown) -> started +500ms, refused after 40ms: dial tcp: connection refused
	//   skip     /ip4/192.168.1.7/tcp/4001: private address outside our networks; the peer has public ones and is not on our network
	//   skip     /ip4/203.0.113.7/tcp/4001: same socket as /ip4/203.0.113.7/tcp/4001/tls
}

// The per-address part of a failed dial's error, most useful first.
func ExampleDialErrorReport() {
	p, _ := peer.Decode("12D3KooWGRUVh2HTwJHRjfyuYJfkgjiTu5yWKAVt7zZpSWWJqD7z")
	var blocked dialrank.BlackHoleView
	blocked[dialrank.UDP6] = dialrank.Blocked
	addrs := []ma.Multiaddr{
		ma.StringCast("/ip6/2001:db8::7/udp/4001/quic-v1"), ma.StringCast("/ip4/203.0.113.7/udp/4001/quic-v1"),
		ma.StringCast("/ip4/203.0.113.7/tcp/4001/tls"), ma.StringCast("/ip4/203.0.113.7/udp/4002/webrtc-direct"),
	}
	noWebRTC := func(a ma.Multiaddr) bool { k, _ := dialrank.TransportOf(a); return k != dialrank.WebRTCDirect }
	start := time.Unix(1_700_000_000, 0)
	plan := dialrank.Plan(addrs, dialrank.Knowledge{Peer: p, BlackHoles: blocked, CanDial: noWebRTC})
	tr := dialrank.NewTrace(p, plan, start)
	q4 := tr.Started(plan.Dials[0], start)
	t4 := tr.Started(plan.Dials[1], start.Add(250*time.Millisecond))
	tr.Finished(t4, start.Add(290*time.Millisecond), fmt.Errorf("dial tcp: %w", syscall.ECONNREFUSED))
	tr.Finished(q4, start.Add(5*time.Second), fmt.Errorf("quic: %w", errTimeout))
	tr.Done(start.Add(5*time.Second), errors.New("all addresses failed"))
	fmt.Println(dialrank.DialErrorReport(tr))
	// Output:
	//   /ip4/203.0.113.7/tcp/4001/tls [tcp/tls]: refused after 40ms: dial tcp: connection refused
	//   /ip4/203.0.113.7/udp/4001/quic-v1 [quic]: timeout after 5s: quic: no recent network activity
	//   /ip6/2001:db8::7/udp/4001/quic-v1 [quic]: skipped: udp/ip6 is a black hole: skipped until the next probe
	//   /ip4/203.0.113.7/udp/4002/webrtc-direct [webrtc-direct]: skipped: no transport dials webrtc-direct addresses
}

type timeoutError struct{}

func (timeoutError) Error() string { return "no recent network activity" }
func (timeoutError) Timeout() bool { return true }

var errTimeout = timeoutError{}
