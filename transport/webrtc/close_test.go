package webrtc

import (
	"errors"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// peerGoneBound is how long TestPeerCloseNoticed lets a close take to be
// noticed: far above the ~1 ms it takes on loopback, far below the ICE
// disconnected timeout (20 s, see settingEngine) that notices a peer that
// vanished without a word (measured: 20 s on the listener, 30 s on the
// dialer, whose ICE checks run on the 15 s keepalive tick).
const peerGoneBound = 5 * time.Second

// TestPeerCloseNoticed: every way a pion peer ends a connection is noticed
// at once by the other side. pc.Close is what go-libp2p v0.51 does (an
// SCTP ABORT, then the DTLS close_notify, then ICE stops); the others send
// only one of the two, as a peer whose first packet is lost would.
func TestPeerCloseNoticed(t *testing.T) {
	ways := []struct {
		name  string
		close func(c *Conn)
	}{
		{"pc.Close", func(c *Conn) { c.pc.Close() }},
		{"SCTP ABORT only", func(c *Conn) { c.pc.SCTP().Stop() }},
		{"DTLS close_notify only", func(c *Conn) { c.pc.SCTP().Transport().Stop() }},
	}
	for _, w := range ways {
		for _, listenerCloses := range []bool{false, true} {
			name := w.name + "/dialer closes"
			if listenerCloses {
				name = w.name + "/listener closes"
			}
			t.Run(name, func(t *testing.T) {
				leakcheck.Check(t)
				c, s := pair(t)
				closer, other := c.(*Conn), s.(*Conn)
				if listenerCloses {
					closer, other = other, closer
				}
				w.close(closer)
				noticed := make(chan error, 1)
				go func() {
					_, err := other.AcceptStream()
					noticed <- err
				}()
				select {
				case err := <-noticed:
					if !errors.Is(err, ErrConnClosed) {
						t.Fatalf("AcceptStream: %v, want ErrConnClosed", err)
					}
				case <-time.After(peerGoneBound):
					other.Close() // ends the AcceptStream
					t.Fatalf("the close was not noticed in %v", peerGoneBound)
				}
				if !other.IsClosed() {
					t.Fatal("IsClosed is false after the peer closed")
				}
			})
		}
	}
}
