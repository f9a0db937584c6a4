package swarm

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/muxer/yamux"
	"github.com/tachyon-p2p/tachyon/peerstore"
	"github.com/tachyon-p2p/tachyon/resolve"
	"github.com/tachyon-p2p/tachyon/security/noise"
	"github.com/tachyon-p2p/tachyon/transport/tcp"
	"github.com/tachyon-p2p/tachyon/upgrader"
)

// dnsServer answers A and TXT queries on 127.0.0.1 from tables (other names
// NXDOMAIN), or never, when silent. It records the names asked.
type dnsServer struct {
	pc     net.PacketConn
	mu     sync.Mutex
	a      map[string]netip.Addr
	txt    map[string][]string
	silent bool
	asked  []string
}

func startDNS(t *testing.T) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &dnsServer{pc: pc, a: map[string]netip.Addr{}, txt: map[string][]string{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := d.answer(buf[:n]); resp != nil {
				pc.WriteTo(resp, from)
			}
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return d
}

func (d *dnsServer) answer(req []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(req)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	name := strings.TrimSuffix(q.Name.String(), ".")
	d.asked = append(d.asked, q.Type.String()+" "+name)
	if d.silent {
		return nil
	}
	ip, hasA := d.a[name]
	txts, hasTXT := d.txt[name]
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true}
	if !hasA && !hasTXT {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.StartQuestions()
	b.Question(q)
	b.StartAnswers()
	rr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
	switch {
	case q.Type == dnsmessage.TypeA && hasA:
		b.AResource(rr, dnsmessage.AResource{A: ip.As4()})
	case q.Type == dnsmessage.TypeTXT:
		for _, txt := range txts {
			b.TXTResource(rr, dnsmessage.TXTResource{TXT: []string{txt}})
		}
	}
	resp, _ := b.Finish()
	return resp
}

// resolver sends every query to d, whatever /etc/resolv.conf says.
func (d *dnsServer) resolver() *resolve.Resolver {
	addr := d.pc.LocalAddr().String()
	return &resolve.Resolver{Backend: &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var nd net.Dialer
			return nd.DialContext(ctx, "udp4", addr)
		},
	}}
}

func (d *dnsServer) setA(name, ip string) {
	d.mu.Lock()
	d.a[name] = netip.MustParseAddr(ip)
	d.mu.Unlock()
}

func (d *dnsServer) setTXT(name string, txts ...string) {
	d.mu.Lock()
	d.txt[name] = txts
	d.mu.Unlock()
}

func (d *dnsServer) setSilent() {
	d.mu.Lock()
	d.silent = true
	d.mu.Unlock()
}

func (d *dnsServer) wasAsked(q string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, a := range d.asked {
		if a == q {
			return true
		}
	}
	return false
}

// newDNSSwarm is newSwarm with a resolver and a dial timeout.
func newDNSSwarm(t *testing.T, r Resolver, timeout time.Duration) *Swarm {
	t.Helper()
	k, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	sec, err := noise.New(k, &noise.Config{})
	if err != nil {
		t.Fatal(err)
	}
	up := &upgrader.Upgrader{Security: []network.SecureTransport{sec}, Muxers: []network.Multiplexer{&yamux.Transport{}}, Transport: "tcp"}
	s := New(id, peerstore.New(), []network.Transport{tcp.New(up, nil)},
		&Config{DialTimeout: timeout, Resolver: r})
	t.Cleanup(func() { s.Close() })
	return s
}

func newPeerID(t *testing.T) peer.ID {
	k, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(k)
	return id
}

func TestDialDNS(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dns := startDNS(t)
	b := newSwarm(t, true)
	port, err := b.ListenAddrs()[0].ValueForProtocol(ma.P_TCP)
	if err != nil {
		t.Fatal(err)
	}
	bID := b.LocalPeer().String()
	dns.setA("localhost", "127.0.0.1")
	dns.setA("node.tachyon.test", "127.0.0.1")
	// The bootstrap-list form: a root name listing a decoy peer (whose
	// address would fail) and b, by a name that needs an A lookup.
	dns.setTXT("_dnsaddr.boot.tachyon.test",
		"dnsaddr=/ip4/127.0.0.1/tcp/1/p2p/"+newPeerID(t).String(),
		"dnsaddr=/dnsaddr/b.tachyon.test/p2p/"+bID,
	)
	dns.setTXT("_dnsaddr.b.tachyon.test", "dnsaddr=/dns4/node.tachyon.test/tcp/"+port+"/p2p/"+bID)
	want := ma.StringCast("/ip4/127.0.0.1/tcp/" + port)

	for _, tc := range []struct{ name, addr string }{
		{"dns4-localhost", "/dns4/localhost/tcp/" + port + "/p2p/" + bID},
		{"dns", "/dns/node.tachyon.test/tcp/" + port},
		{"dnsaddr", "/dnsaddr/boot.tachyon.test/p2p/" + bID},
	} {
		addr := tc.addr
		t.Run(tc.name, func(t *testing.T) {
			a := newDNSSwarm(t, dns.resolver(), 5*time.Second)
			a.Peerstore().AddAddrs(b.LocalPeer(), []ma.Multiaddr{ma.StringCast(addr)}, time.Hour)
			c, err := a.DialPeer(ctx, b.LocalPeer())
			if err != nil {
				t.Fatal(err)
			}
			if !c.RemoteMultiaddr().Equal(want) {
				t.Errorf("connected to %s, want %s", c.RemoteMultiaddr(), want)
			}
		})
	}
	for _, q := range []string{"TypeTXT _dnsaddr.boot.tachyon.test", "TypeTXT _dnsaddr.b.tachyon.test", "TypeA node.tachyon.test"} {
		if !dns.wasAsked(q) {
			t.Errorf("the DNS server was not asked %q", q)
		}
	}
}

func TestDialDNSFailures(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dns := startDNS(t)
	dead := newSwarm(t, true)
	deadAddr := dead.ListenAddrs()[0]
	deadPort, _ := deadAddr.ValueForProtocol(ma.P_TCP)
	dead.Close()
	dns.setA("dead.tachyon.test", "127.0.0.1")
	a := newDNSSwarm(t, dns.resolver(), 5*time.Second)

	// A name not found, and a name resolving to an address already listed:
	// one dial, and the lookup's failure reported by address.
	p := newPeerID(t)
	nx := ma.StringCast("/dns4/nx.tachyon.test/tcp/1")
	a.Peerstore().AddAddrs(p, []ma.Multiaddr{nx, deadAddr, ma.StringCast("/dns4/dead.tachyon.test/tcp/" + deadPort)}, time.Hour)
	_, err := a.DialPeer(ctx, p)
	var de *DialError
	if !errors.As(err, &de) || len(de.Errors) != 2 {
		t.Fatalf("err = %v", err)
	}
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("err = %v: no not-found DNS error", err)
	}
	for _, ae := range de.Errors {
		if !ae.Addr.Equal(nx) && !ae.Addr.Equal(deadAddr) {
			t.Errorf("error for %s", ae.Addr)
		}
	}

	// Only names, none resolving: ErrNoAddresses with the reasons.
	q := newPeerID(t)
	a.Peerstore().AddAddrs(q, []ma.Multiaddr{nx}, time.Hour)
	if _, err := a.DialPeer(ctx, q); !errors.Is(err, ErrNoAddresses) || !errors.As(err, &dnsErr) {
		t.Errorf("err = %v", err)
	}

	// A DNS server that never answers: the dial timeout ends the lookup.
	dns.setSilent()
	slow := newDNSSwarm(t, dns.resolver(), 300*time.Millisecond)
	r := newPeerID(t)
	slow.Peerstore().AddAddrs(r, []ma.Multiaddr{ma.StringCast("/dnsaddr/slow.tachyon.test")}, time.Hour)
	start := time.Now()
	if _, err := slow.DialPeer(ctx, r); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("dial returned after %v", d)
	}
}
