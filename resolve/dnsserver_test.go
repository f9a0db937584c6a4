package resolve

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// testServer is a DNS server on 127.0.0.1 answering A, AAAA and TXT
// queries from tables; names not in any table are NXDOMAIN. Names are
// lowercase and without the trailing dot.
type testServer struct {
	pc      net.PacketConn
	mu      sync.Mutex
	a, aaaa map[string][]netip.Addr
	txt     map[string][]string
	silent  bool         // drop every query (never answer)
	queries atomic.Int32 // questions received
}

func startServer(t *testing.T) *testServer {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{
		pc:   pc,
		a:    make(map[string][]netip.Addr),
		aaaa: make(map[string][]netip.Addr),
		txt:  make(map[string][]string),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.serve()
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return s
}

// addIP adds A or AAAA records, by the address's family.
func (s *testServer) addIP(name string, ips ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ip := range ips {
		a := netip.MustParseAddr(ip)
		if a.Is4() {
			s.a[name] = append(s.a[name], a)
		} else {
			s.aaaa[name] = append(s.aaaa[name], a)
		}
	}
}

func (s *testServer) addTXT(name string, txts ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.txt[name] = append(s.txt[name], txts...)
}

func (s *testServer) setSilent(v bool) {
	s.mu.Lock()
	s.silent = v
	s.mu.Unlock()
}

// resolver returns a Go resolver that sends every query to s, whatever
// /etc/resolv.conf says.
func (s *testServer) resolver() *net.Resolver {
	addr := s.pc.LocalAddr().String()
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp4", addr)
		},
	}
}

func (s *testServer) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := s.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp := s.answer(buf[:n]); resp != nil {
			s.pc.WriteTo(resp, from)
		}
	}
}

func (s *testServer) answer(req []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(req)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	s.queries.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.silent {
		return nil
	}
	name := strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))
	_, hasA := s.a[name]
	_, hasAAAA := s.aaaa[name]
	_, hasTXT := s.txt[name]
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	if !hasA && !hasAAAA && !hasTXT {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), rh)
	b.EnableCompression()
	if b.StartQuestions() != nil || b.Question(q) != nil || b.StartAnswers() != nil {
		return nil
	}
	rr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
	switch q.Type {
	case dnsmessage.TypeA:
		for _, ip := range s.a[name] {
			if b.AResource(rr, dnsmessage.AResource{A: ip.As4()}) != nil {
				return nil
			}
		}
	case dnsmessage.TypeAAAA:
		for _, ip := range s.aaaa[name] {
			if b.AAAAResource(rr, dnsmessage.AAAAResource{AAAA: ip.As16()}) != nil {
				return nil
			}
		}
	case dnsmessage.TypeTXT:
		for _, txt := range s.txt[name] {
			// A record of more than 255 bytes is sent as several strings,
			// which the client concatenates.
			var parts []string
			for len(txt) > 255 {
				parts, txt = append(parts, txt[:255]), txt[255:]
			}
			parts = append(parts, txt)
			if b.TXTResource(rr, dnsmessage.TXTResource{TXT: parts}) != nil {
				return nil
			}
		}
	}
	resp, err := b.Finish()
	if err != nil {
		return nil
	}
	return resp
}
