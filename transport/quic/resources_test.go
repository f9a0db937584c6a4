package quic_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/transport/quic"
	"github.com/tachyon-p2p/tachyon/transport/udpmux"
	tt "github.com/tachyon-p2p/tachyon/transport/udpmux/transporttest"
	"github.com/tachyon-p2p/tachyon/upgrader/rmtest"
)

// rmPeer is a QUIC transport whose Mux and Transport share rm.
func rmPeer(t *testing.T, rm *rmtest.Manager) (*quic.Transport, peer.ID) {
	t.Helper()
	k, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(k)
	var res network.ResourceManager
	if rm != nil { // not a typed nil
		res = rm
	}
	mux := udpmux.New(&udpmux.Config{Resources: res})
	tr, err := quic.New(k, mux, &quic.Config{Resources: res, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return tr, id
}

// eventually waits, up to 10 s, for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("never: %s", what)
}

func TestQUICResources(t *testing.T) {
	t.Run("handshake refused", func(t *testing.T) {
		leakcheck.Check(t)
		srm := &rmtest.Manager{RefuseHandshakes: true}
		server, sid := rmPeer(t, srm)
		client, _ := rmPeer(t, nil)
		l := tt.Listen(t, server, "/ip4/127.0.0.1/udp/0/quic-v1")
		_, err := client.Dial(context.Background(), l.Multiaddrs()[0], sid)
		var te *quicgo.TransportError
		if !errors.As(err, &te) || te.ErrorCode != quicgo.ConnectionRefused {
			t.Fatalf("dial: %v, want CONNECTION_REFUSED", err)
		}
		if st := srm.Stats(); st.HandshakesRefused == 0 || st.Handshakes != 0 || st.Scopes != 0 {
			t.Fatalf("stats %+v", st)
		}
	})

	t.Run("listener refuses the connection", func(t *testing.T) {
		leakcheck.Check(t)
		srm := &rmtest.Manager{RefuseConns: true}
		server, sid := rmPeer(t, srm)
		client, _ := rmPeer(t, nil)
		l := tt.Listen(t, server, "/ip4/127.0.0.1/udp/0/quic-v1")
		accepted := make(chan error, 1)
		go func() {
			c, err := l.Accept()
			if err == nil {
				c.Close()
				err = errors.New("a refused connection was accepted")
			}
			accepted <- err
		}()
		c, err := client.Dial(context.Background(), l.Multiaddrs()[0], sid)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = c.AcceptStream()
		var ae *quicgo.ApplicationError
		if !errors.As(err, &ae) || ae.ErrorCode != quic.CodeResourceLimitExceeded || !ae.Remote {
			t.Fatalf("dialer's conn ended with %v, want RESOURCE_LIMIT_EXCEEDED from the listener", err)
		}
		l.Close()
		if err := <-accepted; err == nil {
			t.Fatal("Accept returned no error after Close")
		}
		if st := srm.Stats(); st.Handshakes != 0 || st.Conns != 0 {
			t.Fatalf("stats %+v", st)
		}
	})

	t.Run("dialer refuses the connection", func(t *testing.T) {
		leakcheck.Check(t)
		crm := &rmtest.Manager{RefuseConns: true}
		server, sid := rmPeer(t, nil)
		client, _ := rmPeer(t, crm)
		l := tt.Listen(t, server, "/ip4/127.0.0.1/udp/0/quic-v1")
		go func() {
			if c, err := l.Accept(); err == nil {
				c.Close()
			}
		}()
		_, err := client.Dial(context.Background(), l.Multiaddrs()[0], sid)
		var le *rmtest.LimitError
		if !errors.Is(err, quic.ErrRefused) || !errors.As(err, &le) {
			t.Fatalf("dial: %v, want the refusal", err)
		}
	})

	t.Run("streams and scopes", func(t *testing.T) {
		leakcheck.Check(t)
		tt.CheckQUICGoroutines(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		srm := &rmtest.Manager{StreamsPerConn: 1}
		crm := &rmtest.Manager{}
		server, sid := rmPeer(t, srm)
		client, _ := rmPeer(t, crm)
		l := tt.Listen(t, server, "/ip4/127.0.0.1/udp/0/quic-v1")
		accepted := make(chan network.TransportConn, 1)
		go func() {
			c, _ := l.Accept()
			accepted <- c
		}()
		dc, err := client.Dial(ctx, l.Multiaddrs()[0], sid)
		if err != nil {
			t.Fatal(err)
		}
		defer dc.Close()
		ac := <-accepted
		if ac == nil {
			t.Fatal("accept failed")
		}
		if st := srm.Stats(); st.Handshakes != 0 || st.HandshakesBegun != 1 || st.Conns != 1 {
			t.Fatalf("listener stats after accept: %+v", st)
		}

		// The listener admits one stream: a second one is reset.
		s1, _ := dc.OpenStream(ctx)
		s1.Write([]byte("one"))
		as1, err := ac.AcceptStream()
		if err != nil {
			t.Fatal(err)
		}
		next := make(chan network.MuxedStream, 1)
		go func() {
			s, _ := ac.AcceptStream() // refuses s2, then waits for s3
			next <- s
		}()
		s2, _ := dc.OpenStream(ctx)
		s2.Write([]byte("two"))
		s2.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = s2.Read(make([]byte, 1))
		var se *quicgo.StreamError
		if !errors.Is(err, network.ErrReset) || !errors.As(err, &se) || se.ErrorCode != quic.CodeResourceLimitExceeded {
			t.Fatalf("second stream: %v, want a reset with RESOURCE_LIMIT_EXCEEDED", err)
		}
		s2.Reset()

		// A stream given back admits the next.
		as1.Close()
		s1.Close()
		s3, _ := dc.OpenStream(ctx)
		s3.Write([]byte("three"))
		as3 := <-next
		if as3 == nil {
			t.Fatal("third stream not accepted")
		}
		buf := make([]byte, 5)
		if _, err := io.ReadFull(as3, buf); err != nil || string(buf) != "three" {
			t.Fatalf("third stream: %q %v", buf, err)
		}
		as3.Close()
		s3.Close()

		// The dialer's stream counts are back to zero; the scopes close
		// with the connection, here closed by the dialer.
		if st := crm.Stats(); st.Streams != 0 || st.Conns != 1 {
			t.Fatalf("dialer stats: %+v", st)
		}
		dc.Close()
		if st := crm.Stats(); st.Conns != 0 {
			t.Fatalf("dialer scope open after Close: %+v", st)
		}
		eventually(t, "listener's scope closed with the connection", func() bool { return srm.Stats().Conns == 0 })
		ac.Close()
		for _, m := range []*rmtest.Manager{srm, crm} {
			if st := m.Stats(); len(st.Misuse) != 0 || st.Streams != 0 || st.Memory != 0 {
				t.Fatalf("stats %+v", st)
			}
		}
	})
}
