package stun

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	pstun "github.com/pion/stun/v3"
	pion "github.com/pion/webrtc/v4"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// serve starts a server on 127.0.0.1; it stops at cleanup.
func serve(t *testing.T, cfg *Config) *Server {
	t.Helper()
	s, err := Listen("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(context.Background()) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-errc; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve after Close: %v", err)
		}
	})
	return s
}

// TestPionClient: pion's STUN client learns its own address.
func TestPionClient(t *testing.T) {
	leakcheck.Check(t)
	s := serve(t, nil)
	c, err := pstun.Dial("udp4", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 3 {
		var got pstun.XORMappedAddress
		var evErr error
		err := c.Do(pstun.MustBuild(pstun.TransactionID, pstun.BindingRequest), func(e pstun.Event) {
			if e.Error != nil {
				evErr = e.Error
				return
			}
			if e.Message.Type != pstun.BindingSuccess {
				evErr = errors.New("not a Binding success: " + e.Message.Type.String())
				return
			}
			if err := pstun.Fingerprint.Check(e.Message); err != nil {
				evErr = err
				return
			}
			evErr = got.GetFrom(e.Message)
		})
		if err != nil || evErr != nil {
			t.Fatal(err, evErr)
		}
		// The client's socket is not exposed; a connected UDP socket to
		// the same server has the same local address form.
		if got.IP.String() != "127.0.0.1" || got.Port == 0 {
			t.Fatalf("XOR-MAPPED-ADDRESS %s", got)
		}
	}
}

// TestMappedAddressIsSender: the answer names exactly the socket that
// asked, and goes back to it.
func TestMappedAddressIsSender(t *testing.T) {
	leakcheck.Check(t)
	s := serve(t, nil)
	for _, network := range []string{"udp4", "udp6"} {
		host := map[string]string{"udp4": "127.0.0.1:0", "udp6": "[::1]:0"}[network]
		t.Run(network, func(t *testing.T) {
			srv := s
			if network == "udp6" {
				var err error
				srv, err = Listen("[::1]:0", nil)
				if err != nil {
					t.Skip("no IPv6 loopback:", err)
				}
				go srv.Serve(context.Background())
				defer srv.Close()
			}
			la, _ := net.ResolveUDPAddr(network, host)
			conn, err := net.ListenUDP(network, la)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			req := pstun.MustBuild(pstun.TransactionID, pstun.BindingRequest)
			resp := exchange(t, conn, srv.Addr(), req.Raw)
			if resp == nil {
				t.Fatal("no answer")
			}
			if resp.TransactionID != req.TransactionID {
				t.Fatal("transaction ID not echoed")
			}
			var x pstun.XORMappedAddress
			if err := x.GetFrom(resp); err != nil {
				t.Fatal(err)
			}
			local := conn.LocalAddr().(*net.UDPAddr)
			if !x.IP.Equal(local.IP) || x.Port != local.Port {
				t.Fatalf("mapped %s, sender %s", x, local)
			}
		})
	}
}

// exchange sends b to to and returns the decoded answer, or nil if none
// came within 300 ms.
func exchange(t *testing.T, conn *net.UDPConn, to net.Addr, b []byte) *pstun.Message {
	t.Helper()
	if _, err := conn.WriteTo(b, to); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 1500)
	n, _, err := conn.ReadFrom(buf)
	if err != nil {
		return nil
	}
	m := &pstun.Message{Raw: append([]byte(nil), buf[:n]...)}
	if err := m.Decode(); err != nil {
		t.Fatalf("answer does not decode: %v", err)
	}
	return m
}

// TestIgnoresAllButBindingRequests: garbage, truncated messages and other
// STUN methods or classes get no answer, and the server keeps serving.
func TestIgnoresAllButBindingRequests(t *testing.T) {
	leakcheck.Check(t)
	s := serve(t, nil)
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := pstun.MustBuild(pstun.TransactionID, pstun.BindingRequest)
	bad := pstun.MustBuild(pstun.TransactionID, pstun.BindingRequest)
	bad.Raw[3] = 200 // length beyond the datagram
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", []byte{}},
		{"garbage", []byte("hello, is this STUN?")},
		{"truncated header", req.Raw[:10]},
		{"length beyond the datagram", bad.Raw},
		{"binding success", pstun.MustBuild(pstun.TransactionID, pstun.BindingSuccess).Raw},
		{"binding indication", pstun.MustBuild(pstun.TransactionID, pstun.NewType(pstun.MethodBinding, pstun.ClassIndication)).Raw},
		{"allocate request", pstun.MustBuild(pstun.TransactionID, pstun.NewType(pstun.MethodAllocate, pstun.ClassRequest)).Raw},
	} {
		if m := exchange(t, conn, s.Addr(), tc.b); m != nil {
			t.Errorf("%s: answered %s", tc.name, m.Type)
		}
	}
	if m := exchange(t, conn, s.Addr(), req.Raw); m == nil || m.Type != pstun.BindingSuccess {
		t.Fatal("a good request after bad ones got no answer")
	}
}

func TestMaxPerSecond(t *testing.T) {
	leakcheck.Check(t)
	s := serve(t, &Config{MaxPerSecond: 2})
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for range 5 {
		if _, err := conn.WriteTo(pstun.MustBuild(pstun.TransactionID, pstun.BindingRequest).Raw, s.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	answers := 0
	buf := make([]byte, 1500)
	conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	for {
		if _, _, err := conn.ReadFrom(buf); err != nil {
			break
		}
		answers++
	}
	// The five requests may straddle a second boundary: 2 or up to 4.
	if answers < 2 || answers > 4 {
		t.Fatalf("%d answers to 5 requests at 2 per second", answers)
	}
}

func TestListenAndServeContext(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- ListenAndServe(ctx, "127.0.0.1:0", nil) }()
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("ListenAndServe after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ListenAndServe did not return")
	}
	if err := ListenAndServe(context.Background(), "not an address", nil); err == nil {
		t.Fatal("bad address accepted")
	}
	s, err := Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Serve(context.Background()); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Close: %v", err)
	}
}

// TestPeerConnectionGathersSrflx: a pion PeerConnection with the server
// as its ICE server gathers a server-reflexive candidate. On loopback
// there is no NAT: the reflexive address is 127.0.0.1 at the port of the
// very socket pion asked from (its related address, which pion binds on
// 0.0.0.0).
func TestPeerConnectionGathersSrflx(t *testing.T) {
	leakcheck.Check(t)
	s := serve(t, nil)
	var se pion.SettingEngine
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]pion.NetworkType{pion.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) })
	api := pion.NewAPI(pion.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(pion.Configuration{ICEServers: []pion.ICEServer{{URLs: []string{"stun:" + s.Addr().String()}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var mu sync.Mutex
	var cands []*pion.ICECandidate
	done := make(chan struct{})
	pc.OnICECandidate(func(c *pion.ICECandidate) {
		if c == nil {
			close(done)
			return
		}
		mu.Lock()
		cands = append(cands, c)
		mu.Unlock()
	})
	if _, err := pc.CreateDataChannel("init", nil); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("gathering did not complete")
	}
	mu.Lock()
	defer mu.Unlock()
	var kinds []string
	var srflx *pion.ICECandidate
	for _, c := range cands {
		kinds = append(kinds, c.Typ.String()+" "+c.Address)
		if c.Typ == pion.ICECandidateTypeSrflx {
			srflx = c
		}
	}
	if srflx == nil {
		t.Fatalf("no srflx candidate among %s", strings.Join(kinds, ", "))
	}
	if srflx.Address != "127.0.0.1" || srflx.Port != srflx.RelatedPort {
		t.Fatalf("srflx %s:%d related %s:%d: want the asking socket itself", srflx.Address, srflx.Port, srflx.RelatedAddress, srflx.RelatedPort)
	}
}
