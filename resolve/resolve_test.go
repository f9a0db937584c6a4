package resolve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
)

const (
	idA = "QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN"
	idB = "QmbLHAnMoJPWSCR5Zhtx6BHJX9KiKNN6tpvbUcqanj75Nb"
	idC = "QmcZf59bWwK5XFi76CZX8cbJ4BhTzzA3gU1ZjYZcYW3dwt"
)

func strs(as []ma.Multiaddr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

func mustResolve(t *testing.T, r *Resolver, addr string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := r.Resolve(ctx, ma.StringCast(addr))
	if err != nil {
		t.Fatalf("Resolve(%s): %v", addr, err)
	}
	return strs(got)
}

func resolveErr(t *testing.T, r *Resolver, addr string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := r.Resolve(ctx, ma.StringCast(addr))
	if err == nil {
		t.Fatalf("Resolve(%s) = %v, want an error", addr, strs(got))
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("error %q does not name %s", err, addr)
	}
	return err
}

func same(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// ipOnly hides LookupNetIP, so that Resolve uses LookupIPAddr.
type ipOnly struct{ r *net.Resolver }

func (b ipOnly) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	return b.r.LookupIPAddr(ctx, host)
}

func (b ipOnly) LookupTXT(ctx context.Context, name string) ([]string, error) {
	return b.r.LookupTXT(ctx, name)
}

func TestDNSFamilies(t *testing.T) {
	s := startServer(t)
	s.addIP("both.test", "1.2.3.4", "5.6.7.8", "2001:db8::1")
	s.addIP("v4.test", "9.9.9.9")
	s.addIP("v6.test", "2001:db8::9")
	for _, tc := range []struct {
		name string
		b    Backend
	}{{"LookupNetIP", s.resolver()}, {"LookupIPAddr", ipOnly{s.resolver()}}} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Resolver{Backend: tc.b}
			same(t, "dns4", mustResolve(t, r, "/dns4/both.test/tcp/4001/p2p/"+idA), []string{
				"/ip4/1.2.3.4/tcp/4001/p2p/" + idA,
				"/ip4/5.6.7.8/tcp/4001/p2p/" + idA,
			})
			same(t, "dns6", mustResolve(t, r, "/dns6/both.test/udp/1/quic-v1"), []string{
				"/ip6/2001:db8::1/udp/1/quic-v1",
			})
			got := mustResolve(t, r, "/dns/both.test/tcp/1")
			slices.Sort(got) // the Go resolver orders by RFC 6724
			same(t, "dns", got, []string{"/ip4/1.2.3.4/tcp/1", "/ip4/5.6.7.8/tcp/1", "/ip6/2001:db8::1/tcp/1"})
			same(t, "dns, v4 only", mustResolve(t, r, "/dns/v4.test/tcp/1"), []string{"/ip4/9.9.9.9/tcp/1"})
			same(t, "dns, v6 only", mustResolve(t, r, "/dns/v6.test/tcp/1"), []string{"/ip6/2001:db8::9/tcp/1"})
			resolveErr(t, r, "/dns6/v4.test/tcp/1")
			resolveErr(t, r, "/dns4/v6.test/tcp/1")
			// localhost goes to the backend like any name (here the Go
			// resolver answers it from /etc/hosts or from the test server).
			s.addIP("localhost", "127.0.0.1")
			same(t, "localhost", mustResolve(t, r, "/dns4/localhost/tcp/5"), []string{"/ip4/127.0.0.1/tcp/5"})
		})
	}
}

func TestNXDOMAIN(t *testing.T) {
	s := startServer(t)
	r := &Resolver{Backend: s.resolver()}
	err := resolveErr(t, r, "/dns4/nx.test/tcp/1")
	var de *net.DNSError
	if !errors.As(err, &de) || !de.IsNotFound {
		t.Fatalf("error %v (%T) is not a not-found *net.DNSError", err, errors.Unwrap(err))
	}
	err = resolveErr(t, r, "/dnsaddr/nx.test")
	if !errors.As(err, &de) || !de.IsNotFound {
		t.Fatalf("dnsaddr: %v", err)
	}
}

func TestDNSAddr(t *testing.T) {
	s := startServer(t)
	s.addTXT("_dnsaddr.multi.test",
		"dnsaddr=/ip4/1.1.1.1/tcp/4001/p2p/"+idA,
		"v=spf1 -all",              // not a dnsaddr record
		"dnsaddr=/not/a/multiaddr", // unparseable: skipped
		"dnsaddr=",                 // empty: skipped
		"dnsaddr=/ip4/1.1.1.1/tcp/4001/p2p/"+idA, // duplicate
		"dnsaddr=/ip6/::2/udp/4001/quic-v1/p2p/"+idA,
	)
	// The public bootstrap layout: one name per peer under a root name,
	// each with its own addresses, some of them names again.
	s.addTXT("_dnsaddr.root.test",
		"dnsaddr=/dnsaddr/a.test/p2p/"+idA,
		"dnsaddr=/dnsaddr/b.test/p2p/"+idB,
	)
	s.addTXT("_dnsaddr.a.test",
		"dnsaddr=/ip4/10.0.0.1/tcp/4001/p2p/"+idA,
		"dnsaddr=/dns4/host-a.test/tcp/443/wss/p2p/"+idA,
	)
	s.addIP("host-a.test", "10.0.0.2")
	s.addTXT("_dnsaddr.b.test", "dnsaddr=/ip4/10.0.0.3/tcp/4001/p2p/"+idB)
	// A record longer than one 255-byte TXT string.
	long := strings.Repeat("x", 250) + ".test"
	s.addTXT("_dnsaddr.long.test", "dnsaddr=/ip4/10.0.0.4/tcp/443/tls/sni/"+long+"/ws/p2p/"+idC)

	r := &Resolver{Backend: s.resolver()}
	same(t, "multiple records", mustResolve(t, r, "/dnsaddr/multi.test"), []string{
		"/ip4/1.1.1.1/tcp/4001/p2p/" + idA,
		"/ip6/::2/udp/4001/quic-v1/p2p/" + idA,
	})
	same(t, "nested", mustResolve(t, r, "/dnsaddr/root.test"), []string{
		"/ip4/10.0.0.1/tcp/4001/p2p/" + idA,
		"/ip4/10.0.0.2/tcp/443/tls/sni/host-a.test/ws/p2p/" + idA,
		"/ip4/10.0.0.3/tcp/4001/p2p/" + idB,
	})
	same(t, "filtered by peer", mustResolve(t, r, "/dnsaddr/root.test/p2p/"+idB), []string{
		"/ip4/10.0.0.3/tcp/4001/p2p/" + idB,
	})
	same(t, "filtered by peer, ipfs alias", mustResolve(t, r, "/dnsaddr/root.test/ipfs/"+idA), []string{
		"/ip4/10.0.0.1/tcp/4001/p2p/" + idA,
		"/ip4/10.0.0.2/tcp/443/tls/sni/host-a.test/ws/p2p/" + idA,
	})
	if err := resolveErr(t, r, "/dnsaddr/root.test/p2p/"+idC); !errors.Is(err, ErrNoAddresses) {
		t.Errorf("unknown peer: %v", err)
	}
	same(t, "long record", mustResolve(t, r, "/dnsaddr/long.test"), []string{
		"/ip4/10.0.0.4/tcp/443/tls/sni/" + long + "/ws/p2p/" + idC,
	})
}

func TestKeepsNameForTLS(t *testing.T) {
	s := startServer(t)
	s.addIP("h.test", "10.1.1.1")
	r := &Resolver{Backend: s.resolver()}
	for in, want := range map[string]string{
		"/dns4/h.test/tcp/443/wss":                                  "/ip4/10.1.1.1/tcp/443/tls/sni/h.test/ws",
		"/dns4/h.test./tcp/443/tls/ws":                              "/ip4/10.1.1.1/tcp/443/tls/sni/h.test/ws",
		"/dns4/h.test/tcp/443/tls/sni/x.test/ws":                    "/ip4/10.1.1.1/tcp/443/tls/sni/x.test/ws",
		"/dns4/h.test/tcp/80/ws":                                    "/ip4/10.1.1.1/tcp/80/ws",
		"/dns4/h.test/tcp/1/p2p/" + idA + "/p2p-circuit/p2p/" + idB: "/ip4/10.1.1.1/tcp/1/p2p/" + idA + "/p2p-circuit/p2p/" + idB,
	} {
		same(t, in, mustResolve(t, r, in), []string{want})
	}
}

func TestLimits(t *testing.T) {
	s := startServer(t)
	s.addTXT("_dnsaddr.loop.test", "dnsaddr=/dnsaddr/loop.test")
	s.addTXT("_dnsaddr.l1.test", "dnsaddr=/dnsaddr/l2.test", "dnsaddr=/ip4/9.9.9.9/tcp/1")
	s.addTXT("_dnsaddr.l2.test", "dnsaddr=/dnsaddr/l1.test")
	s.addTXT("_dnsaddr.d1.test", "dnsaddr=/dnsaddr/d2.test")
	s.addTXT("_dnsaddr.d2.test", "dnsaddr=/dnsaddr/d3.test")
	s.addTXT("_dnsaddr.d3.test", "dnsaddr=/ip4/3.3.3.3/tcp/3")
	// Five spellings of one name: 5^8 paths at the default depth.
	fan := []string{"dnsaddr=/dnsaddr/fan.test", "dnsaddr=/dnsaddr/FAN.test", "dnsaddr=/dnsaddr/Fan.test",
		"dnsaddr=/dnsaddr/fan.test.", "dnsaddr=/dnsaddr/FAN.test."}
	var many []string
	for i := range 10 {
		many = append(many, fmt.Sprintf("dnsaddr=/ip4/10.0.0.%d/tcp/1", i))
		s.addIP("many.test", fmt.Sprintf("10.0.1.%d", i))
	}
	s.addTXT("_dnsaddr.fan.test", fan...)
	s.addTXT("_dnsaddr.many.test", many...)

	t.Run("loop", func(t *testing.T) {
		s.queries.Store(0)
		r := &Resolver{Backend: s.resolver(), MaxDepth: 5}
		if err := resolveErr(t, r, "/dnsaddr/loop.test"); !errors.Is(err, ErrTooDeep) {
			t.Fatalf("err = %v", err)
		}
		if n := s.queries.Load(); n != 5 {
			t.Errorf("%d queries, want MaxDepth = 5", n)
		}
	})
	t.Run("loop with a way out", func(t *testing.T) {
		r := &Resolver{Backend: s.resolver()}
		same(t, "l1", mustResolve(t, r, "/dnsaddr/l1.test"), []string{"/ip4/9.9.9.9/tcp/1"})
	})
	t.Run("depth", func(t *testing.T) {
		r := &Resolver{Backend: s.resolver(), MaxDepth: 2}
		if err := resolveErr(t, r, "/dnsaddr/d1.test"); !errors.Is(err, ErrTooDeep) || !strings.Contains(err.Error(), "/dnsaddr/d3.test") {
			t.Fatalf("err = %v", err)
		}
		r.MaxDepth = 3
		same(t, "depth 3", mustResolve(t, r, "/dnsaddr/d1.test"), []string{"/ip4/3.3.3.3/tcp/3"})
	})
	t.Run("fan-out loop", func(t *testing.T) {
		s.queries.Store(0)
		r := &Resolver{Backend: s.resolver()}
		err := resolveErr(t, r, "/dnsaddr/fan.test")
		if !errors.Is(err, ErrTooManyLookups) {
			t.Fatalf("err = %v", err)
		}
		if n := s.queries.Load(); n != DefaultMaxLookups {
			t.Errorf("%d queries, want %d", n, DefaultMaxLookups)
		}
		if len(err.Error()) > 4000 {
			t.Errorf("error of %d bytes", len(err.Error()))
		}
	})
	t.Run("MaxAddrs", func(t *testing.T) {
		s.queries.Store(0)
		r := &Resolver{Backend: s.resolver(), MaxAddrs: 3}
		same(t, "dnsaddr", mustResolve(t, r, "/dnsaddr/many.test"), []string{
			"/ip4/10.0.0.0/tcp/1", "/ip4/10.0.0.1/tcp/1", "/ip4/10.0.0.2/tcp/1",
		})
		if got := mustResolve(t, r, "/dns4/many.test/tcp/1"); len(got) != 3 {
			t.Errorf("dns4: %q", got)
		}
		// Lookups stop once MaxAddrs is reached.
		s.addTXT("_dnsaddr.names.test", "dnsaddr=/dns4/many.test/tcp/1", "dnsaddr=/dns4/many.test/tcp/2")
		s.queries.Store(0)
		if got := mustResolve(t, r, "/dnsaddr/names.test"); len(got) != 3 {
			t.Errorf("names: %q", got)
		}
		if n := s.queries.Load(); n != 2 {
			t.Errorf("%d queries, want 2", n)
		}
	})
	t.Run("MaxLookups", func(t *testing.T) {
		r := &Resolver{Backend: s.resolver(), MaxLookups: 2}
		if err := resolveErr(t, r, "/dnsaddr/d1.test"); !errors.Is(err, ErrTooManyLookups) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestPassthrough(t *testing.T) {
	s := startServer(t)
	var r *Resolver // nil: defaults, but no lookup happens
	for _, a := range []string{"/ip4/1.2.3.4/tcp/1", "/ip6/::1/udp/1/quic-v1/p2p/" + idA, "/p2p/" + idA} {
		if NeedsResolve(ma.StringCast(a)) {
			t.Errorf("NeedsResolve(%s)", a)
		}
		same(t, a, mustResolve(t, r, a), []string{a})
	}
	if n := s.queries.Load(); n != 0 {
		t.Errorf("%d queries", n)
	}
	for _, a := range []string{"/dns/x.test", "/dns4/x.test/tcp/1", "/dns6/x.test", "/dnsaddr/x.test", "/ip4/1.2.3.4/tcp/1/p2p/" + idA + "/p2p-circuit/dns4/x.test/tcp/1"} {
		if !NeedsResolve(ma.StringCast(a)) {
			t.Errorf("!NeedsResolve(%s)", a)
		}
	}
}

func TestContext(t *testing.T) {
	s := startServer(t)
	s.setSilent(true)
	r := &Resolver{Backend: s.resolver()}
	for _, a := range []string{"/dns4/slow.test/tcp/1", "/dnsaddr/slow.test"} {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		start := time.Now()
		_, err := r.Resolve(ctx, ma.StringCast(a))
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), a) {
			t.Errorf("%s: err = %v", a, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s: returned after %v", a, d)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	if _, err := r.Resolve(ctx, ma.StringCast("/dns/slow.test")); !errors.Is(err, context.Canceled) {
		t.Errorf("cancel: err = %v", err)
	}
}

// mapBackend answers from maps, for what the wire cannot easily carry.
type mapBackend struct {
	ip  map[string][]net.IPAddr
	txt map[string][]string
}

func (b mapBackend) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	if ips, ok := b.ip[host]; ok {
		return ips, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func (b mapBackend) LookupTXT(_ context.Context, name string) ([]string, error) {
	if txt, ok := b.txt[name]; ok {
		return txt, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func TestZonesAndMappedAddresses(t *testing.T) {
	r := &Resolver{Backend: mapBackend{ip: map[string][]net.IPAddr{
		"ll.test":     {{IP: net.ParseIP("fe80::1"), Zone: "eth0"}, {IP: net.ParseIP("2001:db8::2")}},
		"mapped.test": {{IP: net.ParseIP("::ffff:1.2.3.4")}, {IP: net.IP{}}},
	}}}
	same(t, "zone", mustResolve(t, r, "/dns6/ll.test/tcp/1"), []string{"/ip6zone/eth0/ip6/fe80::1/tcp/1", "/ip6/2001:db8::2/tcp/1"})
	same(t, "mapped", mustResolve(t, r, "/dns/mapped.test/tcp/1"), []string{"/ip4/1.2.3.4/tcp/1"})
	resolveErr(t, r, "/dns6/mapped.test/tcp/1")
}

func TestErrorsListEveryBranch(t *testing.T) {
	r := &Resolver{Backend: mapBackend{txt: map[string][]string{
		"_dnsaddr.mixed.test": {"dnsaddr=/dns4/nx1.test/tcp/1", "dnsaddr=/dnsaddr/nx2.test"},
	}}}
	err := resolveErr(t, r, "/dnsaddr/mixed.test")
	for _, want := range []string{"/dns4/nx1.test/tcp/1: ", "nx1.test", "/dnsaddr/nx2.test: ", "_dnsaddr.nx2.test"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	var de *net.DNSError
	if !errors.As(err, &de) {
		t.Errorf("%v does not wrap the DNS errors", err)
	}
	// One good branch is enough.
	r.Backend.(mapBackend).txt["_dnsaddr.mixed.test"] = append(r.Backend.(mapBackend).txt["_dnsaddr.mixed.test"], "dnsaddr=/ip4/1.2.3.4/tcp/1")
	same(t, "partial", mustResolve(t, r, "/dnsaddr/mixed.test"), []string{"/ip4/1.2.3.4/tcp/1"})
}

func TestParseTXT(t *testing.T) {
	for txt, want := range map[string]string{
		"dnsaddr=/ip4/1.2.3.4/tcp/1":         "/ip4/1.2.3.4/tcp/1",
		"dnsaddr=/dnsaddr/x.test/p2p/" + idA: "/dnsaddr/x.test/p2p/" + idA,
		"dnsaddr=/ipfs/" + idA:               "/p2p/" + idA,
		"dnsaddr=":                           "",
		"dnsaddr=ip4/1.2.3.4":                "",
		"DNSADDR=/ip4/1.2.3.4":               "",
		" dnsaddr=/ip4/1.2.3.4":              "",
		"dnsaddr=/ip4/1.2.3.4 ":              "",
		"dnslink=/ipfs/x":                    "",
	} {
		m, err := parseTXT(txt)
		if want == "" {
			if err == nil {
				t.Errorf("parseTXT(%q) = %s", txt, m)
			}
			continue
		}
		if err != nil || m.String() != want {
			t.Errorf("parseTXT(%q) = %v, %v; want %s", txt, m, err, want)
		}
	}
}

// FuzzParseTXT checks that any TXT record parses without panicking into a
// valid multiaddr or an error, and that resolving names whose every TXT
// record is that one (a loop when it names a /dnsaddr) stays within the
// limits.
func FuzzParseTXT(f *testing.F) {
	for _, s := range []string{
		"dnsaddr=/ip4/1.2.3.4/tcp/1/p2p/" + idA,
		"dnsaddr=/dnsaddr/x.test",
		"dnsaddr=/dnsaddr/x.test/p2p/" + idA,
		"dnsaddr=/dns/x.test/tcp/443/wss",
		"dnsaddr=/dns6/x.test/udp/1/quic-v1/webtransport",
		"dnsaddr=/ip4/1.2.3.4/tcp/1/p2p/" + idA + "/p2p-circuit/dnsaddr/x.test",
		"dnsaddr=",
		"v=spf1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, txt string) {
		m, err := parseTXT(txt)
		if err == nil {
			if len(m) == 0 {
				t.Fatal("empty multiaddr without error")
			}
			m2, err := ma.NewMultiaddrBytes(m.Bytes())
			if err != nil || !m2.Equal(m) {
				t.Fatalf("%q: round trip: %v", txt, err)
			}
		}
		b := countingBackend{txt: txt}
		r := &Resolver{Backend: &b, MaxAddrs: 10, MaxLookups: 20, MaxDepth: 4}
		got, err := r.Resolve(context.Background(), ma.StringCast("/dnsaddr/x.test"))
		if len(got) > 10 || b.n > 20 {
			t.Fatalf("%d results after %d lookups", len(got), b.n)
		}
		if (err == nil) == (len(got) == 0) {
			t.Fatalf("%d results and error %v", len(got), err)
		}
		for _, a := range got {
			if NeedsResolve(a) {
				t.Fatalf("result %s still has a name", a)
			}
		}
	})
}

// countingBackend gives every name the same TXT record and the addresses
// 127.0.0.1 and ::1.
type countingBackend struct {
	txt string
	n   int
}

func (b *countingBackend) LookupIPAddr(context.Context, string) ([]net.IPAddr, error) {
	b.n++
	return []net.IPAddr{{IP: net.IPv4(127, 0, 0, 1)}, {IP: net.IPv6loopback}}, nil
}

func (b *countingBackend) LookupTXT(context.Context, string) ([]string, error) {
	b.n++
	return []string{b.txt, b.txt}, nil
}
