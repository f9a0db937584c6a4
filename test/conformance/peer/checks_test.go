package peer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

// The peer judges others: each check must fire on a remote that breaks the
// rule, and stay quiet otherwise.

func frame(typ, flags uint8, id, length uint32, payload []byte) []byte {
	b := make([]byte, 12, 12+len(payload))
	b[1] = typ
	binary.BigEndian.PutUint16(b[2:], uint16(flags))
	binary.BigEndian.PutUint32(b[4:], id)
	binary.BigEndian.PutUint32(b[8:], length)
	return append(b, payload...)
}

func TestYamuxChecks(t *testing.T) {
	big := make([]byte, initialWindow+1)
	for _, tc := range []struct {
		name   string
		frames [][]byte
	}{
		{"version 1", [][]byte{append([]byte{1}, frame(typePing, flagSYN, 0, 1, nil)[1:]...)}},
		{"unknown type", [][]byte{frame(4, 0, 0, 0, nil)}},
		{"server's parity", [][]byte{frame(typeWindowUpdate, flagSYN, 2, 0, nil)}},
		{"reused ID", [][]byte{
			frame(typeWindowUpdate, flagSYN, 1, 0, nil),
			frame(typeWindowUpdate, flagRST, 1, 0, nil),
			frame(typeWindowUpdate, flagSYN, 1, 0, nil),
		}},
		{"over the window", [][]byte{
			frame(typeWindowUpdate, flagSYN, 1, 0, nil),
			frame(typeData, 0, 1, uint32(len(big)), big),
		}},
		{"data after FIN", [][]byte{
			frame(typeWindowUpdate, flagSYN|flagFIN, 1, 0, nil),
			frame(typeData, 0, 1, 1, []byte{0}),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local, remote := net.Pipe()
			defer remote.Close()
			var mu sync.Mutex
			var got []error
			s := NewYamux(local, false, Strict, "remote", func(err error) {
				mu.Lock()
				got = append(got, err)
				mu.Unlock()
			})
			defer s.Close()
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { // drain what the session says (its GoAway)
				defer wg.Done()
				io.Copy(io.Discard, remote)
			}()
			remote.SetWriteDeadline(time.Now().Add(5 * time.Second))
			for _, f := range tc.frames {
				if _, err := remote.Write(f); err != nil {
					break // the session gave up: fine
				}
			}
			select {
			case <-s.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("session did not end")
			}
			s.Close()
			remote.Close()
			wg.Wait()
			mu.Lock()
			defer mu.Unlock()
			var v *Violation
			if len(got) != 1 || !errors.As(got[0], &v) {
				t.Fatalf("violations %v, want one", got)
			}
			if ok, _ := s.GoAway(); ok {
				t.Error("the remote sent no GoAway, yet one was recorded")
			}
		})
	}
}

func TestYamuxAnswersPing(t *testing.T) {
	local, remote := net.Pipe()
	defer remote.Close()
	s := NewYamux(local, true, Strict, "remote", func(err error) { t.Error(err) })
	defer s.Close()
	remote.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := remote.Write(frame(typePing, flagSYN, 0, 42, nil)); err != nil {
		t.Fatal(err)
	}
	var hdr [12]byte
	if _, err := io.ReadFull(remote, hdr[:]); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(hdr[:], frame(typePing, flagACK, 0, 42, nil)) {
		t.Fatalf("answer %x", hdr)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // drain the GoAway of Close
		defer wg.Done()
		io.Copy(io.Discard, remote)
	}()
	s.Close()
	remote.Close()
	wg.Wait()
}

func TestMSSChecks(t *testing.T) {
	long := append(appendUvarint(nil, maxToken+1), bytes.Repeat([]byte("a"), maxToken)...)
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"non-minimal varint", []byte{0x83, 0x00, 'n', 'a', '\n'}},
		{"no newline", []byte{2, 'n', 'a'}},
		{"too long", append(long, '\n')},
		{"not UTF-8", []byte{3, 0xff, 0xfe, '\n'}},
		{"not the header", appendToken(nil, "/yamux/1.0.0")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := readHeader(bytes.NewReader(tc.in))
			if !isViolation(err) {
				t.Fatalf("got %v, want a violation", err)
			}
		})
	}
	if err := readHeader(bytes.NewReader(appendToken(nil, MSSHeader))); err != nil {
		t.Fatal(err)
	}
}

func TestIdentifyChecks(t *testing.T) {
	id, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	msg := func(m *IdentifyMsg) []byte {
		var b bytes.Buffer
		writeIdentify(&b, m, Strict)
		return b.Bytes()
	}
	good := msg(&IdentifyMsg{PublicKey: id.PubKeyPB, AgentVersion: "a"})
	if _, err := readIdentify(bytes.NewReader(good), id.ID); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"two messages", append(slices.Clone(good), good...)},
		{"someone else's key", msg(&IdentifyMsg{PublicKey: other.PubKeyPB})},
		{"over 4096 bytes", msg(&IdentifyMsg{PublicKey: id.PubKeyPB, AgentVersion: string(make([]byte, maxIdentify))})},
		{"bad address", msg(&IdentifyMsg{ListenAddrs: [][]byte{{0xff, 0xff}}})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := readIdentify(bytes.NewReader(tc.in), id.ID); !isViolation(err) {
				t.Fatalf("got %v, want a violation", err)
			}
		})
	}
}
