package peer

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

func secQUICPair(t *testing.T, expect func(*Identity) string) (client, server Session, cID, sID *Identity, dialErr error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cID, _ = NewIdentity()
	sID, _ = NewIdentity()
	ln, err := ListenQUIC("127.0.0.1:0", sID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	type res struct {
		s   Session
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := ln.Accept(ctx)
		ch <- res{s, err}
	}()
	client, dialErr = DialQUIC(ctx, ln.Addr().String(), cID, expect(sID))
	if dialErr != nil {
		return nil, nil, cID, sID, dialErr
	}
	r := <-ch
	if r.err != nil {
		t.Fatalf("accept: %v", r.err)
	}
	t.Cleanup(func() { client.Close(); r.s.Close() })
	return client, r.s, cID, sID, nil
}

func TestQUICStreams(t *testing.T) {
	client, server, cID, sID, err := secQUICPair(t, func(s *Identity) string { return s.ID })
	if err != nil {
		t.Fatal(err)
	}
	if client.RemoteID() != sID.ID || server.RemoteID() != cID.ID {
		t.Fatalf("remote IDs %s, %s", client.RemoteID(), server.RemoteID())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Both sides open streams; a stream becomes visible to the peer with
	// its first bytes.
	for _, pair := range [][2]Session{{client, server}, {server, client}} {
		opener, acceptor := pair[0], pair[1]
		st, err := opener.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		payload := make([]byte, 1<<20)
		rand.Read(payload)
		go func() {
			_, _ = st.Write(payload)
			_ = st.CloseWrite()
		}()
		in, err := acceptor.AcceptStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_ = in.SetDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(in)
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("read %d bytes, %v", len(got), err)
		}
		// After the opener's FIN the acceptor can still answer.
		if _, err := in.Write([]byte("ok")); err != nil {
			t.Fatal(err)
		}
		if err := in.Close(); err != nil {
			t.Fatal(err)
		}
		_ = st.SetDeadline(time.Now().Add(10 * time.Second))
		back, err := io.ReadAll(st)
		if err != nil || string(back) != "ok" {
			t.Fatalf("read back %q, %v", back, err)
		}
	}

	// Reset reaches the other side as a stream error.
	st, err := client.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	in, err := server.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = in.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(in, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if err := st.Reset(); err != nil {
		t.Fatal(err)
	}
	var serr *quic.StreamError
	if _, err := io.ReadAll(in); !errors.As(err, &serr) || serr.ErrorCode != 0 {
		t.Fatalf("after reset: %v", err)
	}
}

func TestQUICWrongPeer(t *testing.T) {
	other, _ := NewIdentity()
	_, _, _, _, err := secQUICPair(t, func(*Identity) string { return other.ID })
	if err == nil {
		t.Fatal("dial to the wrong peer succeeded")
	}
	t.Log(err)
}

// TestQUICNoUniStreams: the peer is given no credit for unidirectional
// streams, so opening one cannot succeed.
func TestQUICNoUniStreams(t *testing.T) {
	client, _, _, _, err := secQUICPair(t, func(*Identity) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := client.(*quicSession).conn.OpenUniStreamSync(ctx); err == nil {
		t.Fatal("opened a unidirectional stream")
	}
}

func TestQUICSessionClose(t *testing.T) {
	client, server, _, _, err := secQUICPair(t, func(*Identity) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = server.AcceptStream(ctx)
	var appErr *quic.ApplicationError
	if !errors.As(err, &appErr) || appErr.ErrorCode != 0 || !appErr.Remote {
		t.Fatalf("server saw %v, want a remote application close with code 0", err)
	}
}
