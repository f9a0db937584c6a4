package streamtest

import (
	"errors"
	"io"
	"os"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
)

func TestPair(t *testing.T) {
	const delay = 30 * time.Millisecond
	a, b := Pair(Config{
		Protocol: "/test", Delay: delay, A: PeerID(t, "a"), B: PeerID(t, "b"),
		AAddr: ma.StringCast("/ip4/1.2.3.4/tcp/1"), BAddr: ma.StringCast("/ip4/5.6.7.8/tcp/2"),
	})
	if b.RemoteMultiaddr().String() != "/ip4/1.2.3.4/tcp/1" || b.RemotePeer() != a.LocalPeer() || b.Direction() != network.DirInbound || a.Direction() != network.DirOutbound {
		t.Fatalf("b sees %s %s %s", b.RemotePeer(), b.RemoteMultiaddr(), b.Direction())
	}
	start := time.Now()
	if _, err := a.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	a.CloseWrite()
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "hello" {
		t.Fatalf("read %q, %v", got, err)
	}
	if el := time.Since(start); el < delay {
		t.Fatalf("data arrived after %s, before the delay %s", el, delay)
	}
	if a.Written() != 5 || b.Written() != 0 {
		t.Fatalf("written: a %d, b %d", a.Written(), b.Written())
	}
	if _, err := a.Write([]byte("x")); !errors.Is(err, ErrWriteAfterClose) {
		t.Fatalf("write after close: %v", err)
	}

	b.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := b.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read after EOF: %v", err)
	}
	a.SetDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := a.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
	b.Reset()
	if _, err := a.Read(make([]byte, 1)); !errors.Is(err, network.ErrReset) {
		t.Fatalf("read after reset: %v", err)
	}
	if a.Ended() != "" || b.WaitEnded(t, time.Second) != "reset" {
		t.Fatalf("ended: a %q, b %q", a.Ended(), b.Ended())
	}
}
