package peer

import (
	"context"
	"crypto/rand"
	"slices"
	"testing"
	"time"
)

// TestPeerToPeer runs the peer against itself, every mode against every
// mode, over TCP with Noise: the parts must agree before they judge others.
func TestPeerToPeer(t *testing.T) {
	for _, dm := range []Mode{Strict, Pipelined, Split} {
		for _, lm := range []Mode{Strict, Pipelined, Split} {
			t.Run(dm.String()+"-to-"+lm.String(), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				d, err := New(Config{Mode: dm, ProposeFirst: proposeFirst(dm)})
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close()
				l, err := New(Config{Mode: lm})
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				addr, err := l.ListenTCP("127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				hostport, err := hostPort(addr)
				if err != nil {
					t.Fatal(err)
				}
				c, err := d.DialTCP(ctx, hostport, l.ID())
				if err != nil {
					t.Fatal(err)
				}
				if err := c.Ping(ctx, 3); err != nil {
					t.Fatal(err)
				}
				lc, err := l.Accept(ctx)
				if err != nil {
					t.Fatal(err)
				}
				m, err := c.Identify(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if m.AgentVersion != l.cfg.AgentVersion {
					t.Errorf("agent %q", m.AgentVersion)
				}
				if _, err := lc.Identify(ctx); err != nil {
					t.Fatal(err)
				}
				data := make([]byte, 1<<20)
				rand.Read(data)
				if err := c.Echo(ctx, data); err != nil {
					t.Fatal(err)
				}
				if err := lc.Echo(ctx, data); err != nil {
					t.Fatal(err)
				}
				if err := c.Perf(ctx, 1<<20, 1<<20); err != nil {
					t.Fatal(err)
				}
				l.AddProtocol("/pushed/1.0.0")
				if err := lc.Push(ctx); err != nil {
					t.Fatal(err)
				}
				select {
				case m := <-c.Pushes():
					if !slices.Contains(m.Protocols, "/pushed/1.0.0") {
						t.Errorf("push lacks the protocol: %v", m.Protocols)
					}
				case <-ctx.Done():
					t.Fatal("no push")
				}
				if _, _, err := c.NewStream(ctx, "/nope/1.0.0", EchoID); err != nil {
					t.Fatal(err)
				}
				if err := c.Yamux().Ping(ctx); err != nil {
					t.Fatal(err)
				}
				c.Close()
				select {
				case <-lc.Yamux().Done():
				case <-ctx.Done():
					t.Fatal("listener did not see the close")
				}
				if ok, code := lc.Yamux().GoAway(); !ok || code != 0 {
					t.Errorf("GoAway %v %d", ok, code)
				}
				for _, p := range []*Peer{d, l} {
					for _, v := range p.Violations() {
						t.Error(v)
					}
				}
			})
		}
	}
}

func proposeFirst(m Mode) string {
	if m == Strict {
		return "/nope/1.0.0"
	}
	return ""
}
