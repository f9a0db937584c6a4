package autonatv1

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/internal/lp"
	"github.com/tachyon-p2p/tachyon/internal/streamtest"
)

// TestCheckAnswers plays the server by hand: Check must read each answer
// as the proto says.
func TestCheckAnswers(t *testing.T) {
	leakcheck.Check(t)
	me := streamtest.PeerID(t, "client")
	a := ma.StringCast(tcp(clientIP, 4001))
	tests := []struct {
		name string
		// answer is written after the request was read; reset resets
		// the server's end instead.
		answer     []byte
		reset      bool
		wantAddr   ma.Multiaddr
		wantStatus *StatusError
		wantErr    error // errors.Is target
		wantEnd    string
	}{
		{name: "OK with address", answer: lp.Append(nil, (&Message{Type: TypeDialResponse, DialResponse: &DialResponse{Addr: a}}).Marshal()),
			wantAddr: a, wantEnd: "close"},
		{name: "OK without address", answer: lp.Append(nil, []byte{0x08, 0x01, 0x1a, 0x00}), wantEnd: "close"},
		{name: "E_DIAL_ERROR", answer: lp.Append(nil, (&Message{Type: TypeDialResponse, DialResponse: &DialResponse{Status: StatusDialError, StatusText: "dial failed"}}).Marshal()),
			wantStatus: &StatusError{StatusDialError, "dial failed"}, wantEnd: "close"},
		{name: "E_DIAL_REFUSED without text", answer: lp.Append(nil, []byte{0x08, 0x01, 0x1a, 0x02, 0x08, 0x65}),
			wantStatus: &StatusError{StatusDialRefused, ""}, wantEnd: "close"},
		{name: "unknown status is not OK", answer: lp.Append(nil, []byte{0x08, 0x01, 0x1a, 0x02, 0x08, 0x05}),
			wantStatus: &StatusError{Status(5), ""}, wantEnd: "close"},
		{name: "DIAL instead of a response", answer: lp.Append(nil, []byte{0x08, 0x00}), wantErr: ErrMalformed, wantEnd: "reset"},
		{name: "response type without a response", answer: lp.Append(nil, []byte{0x08, 0x01}), wantErr: ErrMalformed, wantEnd: "reset"},
		{name: "garbage", answer: lp.Append(nil, []byte{0xff}), wantErr: ErrMalformed, wantEnd: "reset"},
		{name: "too large", answer: []byte{0x81, 0x20}, wantErr: lp.ErrTooLarge, wantEnd: "reset"},
		{name: "server resets", reset: true, wantErr: network.ErrReset, wantEnd: "reset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := pair(t, conn{client: me, remote: tcp(clientIP, 50123)})
			served := make(chan error, 1)
			go func() {
				server.SetDeadline(time.Now().Add(testTimeout))
				if _, err := Read(server); err != nil {
					served <- err
					return
				}
				if tt.reset {
					served <- server.Reset()
					return
				}
				_, err := server.Write(tt.answer)
				served <- err
			}()
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			addr, err := Check(ctx, client, me, []ma.Multiaddr{a})
			if serr := <-served; serr != nil {
				t.Fatal(serr)
			}
			switch {
			case tt.wantStatus != nil:
				var se *StatusError
				if !errors.As(err, &se) || *se != *tt.wantStatus {
					t.Fatalf("Check error %v, want %v", err, tt.wantStatus)
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Check error %v, want %v", err, tt.wantErr)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
			}
			if (addr == nil) != (tt.wantAddr == nil) || addr != nil && !addr.Equal(tt.wantAddr) {
				t.Fatalf("address %v, want %v", addr, tt.wantAddr)
			}
			if server := client.Conn().RemotePeer().String(); err != nil && !strings.Contains(err.Error(), server) {
				t.Fatalf("error %q does not name the server %s", err, server)
			}
			if got := client.Ended(); got != tt.wantEnd {
				t.Fatalf("client ended with %q, want %q", got, tt.wantEnd)
			}
		})
	}
}

func TestCheckContext(t *testing.T) {
	leakcheck.Check(t)
	me := streamtest.PeerID(t, "client")
	client, _ := pair(t, conn{client: me, remote: tcp(clientIP, 50123)})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Check(ctx, client, me, addrs(tcp(clientIP, 4001)))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Check = %v, want the context's error", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Check ignored its context")
	}
	if client.Ended() != "reset" {
		t.Fatalf("client ended with %q", client.Ended())
	}
}

func TestCheckTooManyAddrs(t *testing.T) {
	me := streamtest.PeerID(t, "client")
	client, _ := pair(t, conn{client: me, remote: tcp(clientIP, 50123)})
	var many []ma.Multiaddr
	for i := range 500 {
		many = append(many, ma.StringCast(fmt.Sprintf("/ip6/2606:4700::%x/udp/%d/quic-v1", i, 4001+i)))
	}
	if _, err := Check(context.Background(), client, me, many); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Check = %v, want ErrTooLarge", err)
	}
	if client.Written() != 0 {
		t.Fatal("an oversized request was sent")
	}
}

// Check against the server, both in memory, for the outcomes a client
// acts on.
func TestCheckEndToEnd(t *testing.T) {
	leakcheck.Check(t)
	me := streamtest.PeerID(t, "client")
	c := conn{client: me, remote: tcp(clientIP, 50123)}
	good := ma.StringCast(quic(clientIP, 4001))

	s := New(&fakeHost{ok: good.Equal}, Config{DialTimeout: 10 * time.Millisecond})
	defer s.Close()
	addr, err := ask(t, s, c, me, []ma.Multiaddr{ma.StringCast(tcp(clientIP, 4001)), good})
	if err != nil || !addr.Equal(good) {
		t.Fatalf("reachable: %v, %v", addr, err)
	}
	_, err = ask(t, s, c, me, addrs(tcp(clientIP, 4001)))
	var se *StatusError
	if !errors.As(err, &se) || se.Status != StatusDialError {
		t.Fatalf("unreachable: %v", err)
	}
	_, err = ask(t, s, c, me, addrs(tcp(victimIP, 4001)))
	if !errors.As(err, &se) || se.Status != StatusDialRefused {
		t.Fatalf("someone else's address: %v", err)
	}
	if want := `autonatv1: server answered E_DIAL_REFUSED: "no dialable addresses"`; !strings.HasSuffix(err.Error(), want) {
		t.Fatalf("error %q, want it to end with %q", err, want)
	}
}
