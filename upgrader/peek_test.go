package upgrader

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// countConn counts the reads made on a connection.
type countConn struct {
	net.Conn
	reads atomic.Int32
}

func (c *countConn) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.Conn.Read(p)
}

// countedPipe returns both ends of a net.Pipe, ours counting its reads,
// with a deadline so that a broken test fails instead of hanging; both are
// closed when the test ends.
func countedPipe(t *testing.T) (*countConn, net.Conn) {
	ours, peer := net.Pipe()
	t.Cleanup(func() { ours.Close(); peer.Close() })
	ours.SetDeadline(time.Now().Add(5 * time.Second))
	peer.SetDeadline(time.Now().Add(5 * time.Second))
	return &countConn{Conn: ours}, peer
}

// TestSecurityNegotiationReads checks that multistream-select for the
// security protocol costs one read per batch of tokens the peer sent on
// each side, not one per length prefix and token, that bytes read past the
// negotiation reach the handshake, and that with none left over the
// handshake gets the bare connection.
func TestSecurityNegotiationReads(t *testing.T) {
	hs := mssHello(NoiseID)
	for _, tc := range []struct {
		name  string
		extra string // what the peer sends right behind its tokens
	}{
		{"nothing behind", ""},
		{"handshake behind", "first handshake bytes"},
	} {
		for _, client := range []bool{false, true} {
			side := map[bool]string{false: "listener", true: "dialer"}[client]
			t.Run(side+", "+tc.name, func(t *testing.T) {
				u, _ := newUpgrader(t, TLSID, NoiseID)
				if client {
					// Noise first: proposed and answered before the
					// handshake (the last proposal would be optimistic).
					u, _ = newUpgrader(t, NoiseID, TLSID)
				}
				raw, peer := countedPipe(t)
				go func() {
					if client { // a listener reads the proposal, then answers
						got := make([]byte, len(hs))
						if _, err := io.ReadFull(peer, got); err != nil || !bytes.Equal(got, hs) {
							return
						}
					}
					peer.Write(append(append([]byte(nil), hs...), tc.extra...))
					io.Copy(io.Discard, peer)
				}()
				sec, conn, err := u.negotiateSecurity(raw, client, nil)
				if err != nil {
					t.Fatal(err)
				}
				if sec.ID() != NoiseID {
					t.Fatalf("picked %s", sec.ID())
				}
				if n := raw.reads.Load(); n != 1 {
					t.Fatalf("%d reads for the peer's tokens, want 1", n)
				}
				checkRest(t, conn, raw, tc.extra)
			})
		}
	}
}

func checkRest(t *testing.T, conn net.Conn, raw *countConn, extra string) {
	t.Helper()
	if extra == "" {
		if conn != net.Conn(raw) {
			t.Fatalf("handshake gets %T, want the bare connection", conn)
		}
		return
	}
	got := make([]byte, len(extra))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != extra {
		t.Fatalf("handshake read %q, %v; want %q", got, err, extra)
	}
}

// TestOptimisticProposalReads: a dialer with one security protocol writes
// nothing during negotiation; its header and proposal lead the handshake's
// first write, and the listener's header, answer and first handshake bytes
// cost its handshake one read, which gets the handshake bytes alone.
func TestOptimisticProposalReads(t *testing.T) {
	hs := mssHello(NoiseID)
	u, _ := newUpgrader(t, NoiseID)
	raw, peer := countedPipe(t)
	sec, conn, err := u.negotiateSecurity(raw, true, nil)
	if err != nil || sec.ID() != NoiseID {
		t.Fatalf("negotiateSecurity = %v, %v", sec, err)
	}
	first := []byte("first handshake message")
	peerErr := make(chan error, 1)
	go func() {
		got := make([]byte, len(hs)+len(first))
		if _, err := io.ReadFull(peer, got); err != nil || !bytes.Equal(got, append(hs, first...)) {
			peerErr <- fmt.Errorf("listener read %q, %v", got, err)
			return
		}
		_, err := peer.Write(append(append([]byte(nil), hs...), "reply"...))
		peerErr <- err
	}()
	if _, err := conn.Write(first); err != nil {
		t.Fatal(err)
	}
	reply := make([]byte, 5)
	if _, err := io.ReadFull(conn, reply); err != nil || string(reply) != "reply" {
		t.Fatalf("handshake read %q, %v", reply, err)
	}
	if err := <-peerErr; err != nil {
		t.Fatal(err)
	}
	if n := raw.reads.Load(); n != 1 {
		t.Errorf("%d reads for the answer and the reply, want 1", n)
	}
}
