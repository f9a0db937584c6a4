package identify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/core/record"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/internal/lp"
	"github.com/tachyon-p2p/tachyon/internal/pb"
	"github.com/tachyon-p2p/tachyon/internal/varint"
)

// pipeStream is a network.Stream over one end of a net.Pipe. net.Pipe has no
// half-close, so CloseWrite is a no-op and Close ends both directions: enough
// for identify, where one side only writes and the other only reads.
type pipeStream struct {
	pipeConn
	local, remote peer.ID
	remoteAddr    ma.Multiaddr
	proto         protocol.ID
}

func (s *pipeStream) CloseWrite() error             { return nil }
func (s *pipeStream) CloseRead() error              { return nil }
func (s *pipeStream) Reset() error                  { return s.pipeConn.Close() }
func (s *pipeStream) Protocol() protocol.ID         { return s.proto }
func (s *pipeStream) LocalPeer() peer.ID            { return s.local }
func (s *pipeStream) RemotePeer() peer.ID           { return s.remote }
func (s *pipeStream) RemoteMultiaddr() ma.Multiaddr { return s.remoteAddr }
func (s *pipeStream) LocalMultiaddr() ma.Multiaddr  { return nil }
func (s *pipeStream) Direction() network.Direction  { return network.DirUnknown }

func (s *pipeStream) Conn() network.Conn { return nil }

// pipeConn names the embedded net.Conn so that it does not hide Conn().
type pipeConn = net.Conn

var _ network.Stream = (*pipeStream)(nil)

// streamPair returns the two ends of a stream between peers a and b; a sees b
// at addrB and b sees a at addrA.
func streamPair(t *testing.T, a, b peer.ID, addrA, addrB ma.Multiaddr) (*pipeStream, *pipeStream) {
	ca, cb := net.Pipe()
	t.Cleanup(func() { ca.Close(); cb.Close() })
	return &pipeStream{ca, a, b, addrB, ID}, &pipeStream{cb, b, a, addrA, ID}
}

type fakeHost struct {
	key    crypto.PrivKey
	id     peer.ID
	addrs  []ma.Multiaddr
	protos []protocol.ID
}

func newHost(t testing.TB, seed byte, addrs ...string) *fakeHost {
	k, err := crypto.Ed25519KeyFromSeed(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	h := &fakeHost{key: k, id: id, protos: []protocol.ID{ID, PushID, "/ipfs/ping/1.0.0"}}
	for _, a := range addrs {
		h.addrs = append(h.addrs, ma.StringCast(a))
	}
	return h
}

func (h *fakeHost) ID() peer.ID                             { return h.id }
func (h *fakeHost) PrivateKey() crypto.PrivKey              { return h.key }
func (h *fakeHost) ListenAddrs(ma.Multiaddr) []ma.Multiaddr { return h.addrs }
func (h *fakeHost) Protocols() []protocol.ID                { return h.protos }

var (
	addrClient = ma.StringCast("/ip4/127.0.0.1/tcp/50000")
	addrServer = ma.StringCast("/ip4/127.0.0.1/tcp/4001")
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// runIdentify serves srv's Handle on one end and runs Identify on the other.
func runIdentify(t *testing.T, srvHost *fakeHost, srv *Service, cliID peer.ID) (*Result, error) {
	cli, srvEnd := streamPair(t, cliID, srvHost.id, addrClient, addrServer)
	done := make(chan struct{})
	go func() { defer close(done); srv.Handle(srvEnd) }()
	res, err := NewService(newHost(t, 99), "client").Identify(ctxT(t), cli)
	<-done
	return res, err
}

func TestIdentifyRoundTrip(t *testing.T) {
	leakcheck.Check(t)
	srvHost := newHost(t, 1, "/ip4/127.0.0.1/tcp/4001", "/ip6/::1/udp/4001/quic-v1")
	srv := NewService(srvHost, "tachyon/test")
	cliID := newHost(t, 2).id

	res, err := runIdentify(t, srvHost, srv, cliID)
	if err != nil {
		t.Fatal(err)
	}
	m := res.Message
	if res.Peer != srvHost.id || !srvHost.id.MatchesPublicKey(m.PublicKey) {
		t.Fatal("result peer or key mismatch")
	}
	if m.AgentVersion != "tachyon/test" || m.ProtocolVersion != ProtocolVersion {
		t.Fatalf("versions %q %q", m.AgentVersion, m.ProtocolVersion)
	}
	if !m.ObservedAddr.Equal(addrClient) {
		t.Fatalf("observed %s, want %s", m.ObservedAddr, addrClient)
	}
	if fmt.Sprint(m.Protocols) != fmt.Sprint(srvHost.protos) || fmt.Sprint(m.ListenAddrs) != fmt.Sprint(srvHost.addrs) {
		t.Fatalf("protocols %v addrs %v", m.Protocols, m.ListenAddrs)
	}
	// The record is held as received until asked for: identify itself
	// spends no signature check on it.
	if res.signed == nil || res.signed.rec != nil || len(res.signed.envelope) == 0 {
		t.Fatalf("signed record opened by identify, or missing: %+v", res.signed)
	}
	if res.Record() == nil || res.Record().PeerID != srvHost.id || fmt.Sprint(res.Record().Addrs) != fmt.Sprint(srvHost.addrs) {
		t.Fatalf("record %+v", res.Record())
	}
	seq1 := res.Record().Seq

	// Same addresses: the cached record is reused.
	res, err = runIdentify(t, srvHost, srv, cliID)
	if err != nil || res.Record() == nil || res.Record().Seq != seq1 {
		t.Fatalf("second identify: %v, %+v", err, res)
	}
	// New addresses: a new record with a higher sequence number.
	srvHost.addrs = srvHost.addrs[:1]
	res, err = runIdentify(t, srvHost, srv, cliID)
	if err != nil || res.Record() == nil || res.Record().Seq <= seq1 || len(res.Record().Addrs) != 1 {
		t.Fatalf("third identify: %v, %+v", err, res)
	}
}

// serveRaw writes raw bytes as the responder would and closes.
func serveRaw(t *testing.T, srvID peer.ID, payload []byte) (*Result, error) {
	cli, srvEnd := streamPair(t, "client", srvID, addrClient, addrServer)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = srvEnd.Write(payload)
		srvEnd.Close()
	}()
	res, err := NewService(newHost(t, 99), "client").Identify(ctxT(t), cli)
	<-done
	return res, err
}

func TestIdentifyChecks(t *testing.T) {
	leakcheck.Check(t)
	srv := newHost(t, 3, "/ip4/127.0.0.1/tcp/1")
	other := newHost(t, 4)
	goodRecord, err := record.SealPeerRecord(&record.PeerRecord{Seq: 5, Addrs: srv.addrs}, srv.key)
	if err != nil {
		t.Fatal(err)
	}
	otherRecord, _ := record.SealPeerRecord(&record.PeerRecord{Seq: 5}, other.key)
	legacyEnv, _ := record.Seal("libp2p-routing-state", []byte("/libp2p/routing-state-record"),
		(&record.PeerRecord{PeerID: srv.id, Seq: 9, Addrs: srv.addrs}).Marshal(), srv.key)
	legacyRecord, _ := legacyEnv.Marshal()
	corrupt := bytes.Clone(goodRecord)
	corrupt[len(corrupt)-1] ^= 1

	msg := func(key crypto.PrivKey, rec []byte) []byte {
		return lp.Append(nil, (&Message{PublicKey: key.GetPublic(), AgentVersion: "x", SignedPeerRecord: rec}).Marshal())
	}
	cases := []struct {
		name       string
		payload    []byte
		ok         bool
		wantRecord uint64 // seq of the expected record, 0 for none
	}{
		{"good", msg(srv.key, goodRecord), true, 5},
		{"legacy rust record", msg(srv.key, legacyRecord), true, 9},
		{"corrupt record kept identify", msg(srv.key, corrupt), true, 0},
		{"record of another peer ignored", msg(srv.key, otherRecord), true, 0},
		{"wrong public key", msg(other.key, nil), false, 0},
		{"no message", nil, false, 0},
		{"truncated", msg(srv.key, nil)[:10], false, 0},
		{"oversized", lp.Append(nil, make([]byte, MaxReadSize+1)), false, 0},
		{"bad key bytes", lp.Append(nil, pb.AppendBytes(nil, fPublicKey, []byte{1, 2})), false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := serveRaw(t, srv.id, c.payload)
			if c.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, c.ok)
			}
			if !c.ok {
				return
			}
			switch {
			case c.wantRecord == 0 && res.Record() != nil:
				t.Fatalf("unexpected record %+v", res.Record())
			case c.wantRecord != 0 && (res.Record() == nil || res.Record().Seq != c.wantRecord):
				t.Fatalf("record %+v, want seq %d", res.Record(), c.wantRecord)
			}
		})
	}
}

// TestIdentifyPeerNeverCloses: a responder that writes one message and then
// neither writes nor closes still answers, after FollowUpWait rather than
// the whole stream timeout.
func TestIdentifyPeerNeverCloses(t *testing.T) {
	leakcheck.Check(t)
	srvHost := newHost(t, 12, "/ip4/127.0.0.1/tcp/1")
	cli, srvEnd := streamPair(t, "client", srvHost.id, addrClient, addrServer)
	release := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = Write(srvEnd, NewService(srvHost, "silent/1").message(addrClient))
		<-release // stays open, as a peer that never closes would
		srvEnd.Close()
	}()
	defer func() { close(release); <-done }()
	start := time.Now()
	res, err := NewService(newHost(t, 99), "client").Identify(ctxT(t), cli)
	if err != nil {
		t.Fatal(err)
	}
	if res.Message.AgentVersion != "silent/1" || res.Record() == nil {
		t.Fatalf("result %+v", res)
	}
	if d := time.Since(start); d < FollowUpWait/2 || d > FollowUpWait+2*time.Second {
		t.Fatalf("identify took %v, want about FollowUpWait (%v)", d, FollowUpWait)
	}
}

// resetStream is a stream whose reads return data and then err, as a stream
// the peer reset after writing data would.
type resetStream struct {
	*pipeStream
	r io.Reader
}

func (s *resetStream) Read(p []byte) (int, error) { return s.r.Read(p) }

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// TestIdentifyEndsWithoutEOF: after one good message, a reset or a message
// cut short by one keeps what was read; a framing violation or a message
// that does not decode is still an error.
func TestIdentifyEndsWithoutEOF(t *testing.T) {
	leakcheck.Check(t)
	srv := newHost(t, 13, "/ip4/127.0.0.1/tcp/1")
	rec, err := record.SealPeerRecord(&record.PeerRecord{Seq: 7, Addrs: srv.addrs}, srv.key)
	if err != nil {
		t.Fatal(err)
	}
	first := lp.Append(nil, (&Message{PublicKey: srv.key.GetPublic(), AgentVersion: "first"}).Marshal())
	second := lp.Append(nil, (&Message{AgentVersion: "second", SignedPeerRecord: rec}).Marshal())
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	cases := []struct {
		name      string
		data      []byte
		end       error
		wantAgent string // "" when identify must fail
	}{
		{"reset after one", first, network.ErrReset, "first"},
		{"reset after two", cat(first, second), network.ErrReset, "second"},
		{"reset mid second", cat(first, second[:len(second)/2]), network.ErrReset, "first"},
		{"timeout after one", first, os.ErrDeadlineExceeded, "first"},
		{"reset before any", nil, network.ErrReset, ""},
		{"reset mid first", first[:len(first)/2], network.ErrReset, ""},
		{"oversized second", cat(first, varint.Append(nil, MaxReadSize+1)), io.EOF, ""},
		{"bad varint second", cat(first, bytes.Repeat([]byte{0xff}, varint.MaxLen)), io.EOF, ""},
		{"undecodable second", cat(first, lp.Append(nil, []byte{0xff})), io.EOF, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cli, _ := streamPair(t, "client", srv.id, addrClient, addrServer)
			st := &resetStream{cli, io.MultiReader(bytes.NewReader(c.data), errReader{c.end})}
			res, err := NewService(newHost(t, 99), "client").Identify(ctxT(t), st)
			if c.wantAgent == "" {
				if err == nil {
					t.Fatalf("identify succeeded: %+v", res.Message)
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Message.AgentVersion != c.wantAgent {
				t.Fatalf("agent %q, want %q", res.Message.AgentVersion, c.wantAgent)
			}
			if (c.wantAgent == "second") != (res.Record() != nil) {
				t.Fatalf("record %+v", res.Record())
			}
		})
	}
}

func TestIdentifyContextCancel(t *testing.T) {
	leakcheck.Check(t)
	cli, _ := streamPair(t, "client", "server", addrClient, addrServer)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := NewService(newHost(t, 99), "client").Identify(ctx, cli)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("Identify did not return promptly after the context ended")
	}
}

func TestPush(t *testing.T) {
	leakcheck.Check(t)
	a := newHost(t, 5, "/ip4/127.0.0.1/tcp/7")
	b := newHost(t, 6)
	sa, sb := streamPair(t, a.id, b.id, addrServer, addrClient)
	sa.proto, sb.proto = PushID, PushID
	errc := make(chan error, 1)
	go func() { errc <- NewService(a, "pusher").Push(ctxT(t), sa) }()
	res, err := NewService(b, "b").HandlePush(sb)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("Push: %v", err)
	}
	if res.Peer != a.id || res.Message.AgentVersion != "pusher" || res.Record() == nil || len(res.Record().Addrs) != 1 {
		t.Fatalf("push result %+v", res)
	}
}

func TestMessageRoundTrip(t *testing.T) {
	h := newHost(t, 7, "/ip4/127.0.0.1/tcp/1", "/dns4/example.com/tcp/443/wss")
	rec, _ := record.SealPeerRecord(&record.PeerRecord{Seq: 1}, h.key)
	cases := []struct {
		name string
		m    Message
	}{
		{"empty", Message{}},
		{"key only", Message{PublicKey: h.key.GetPublic()}},
		{"full", Message{
			PublicKey: h.key.GetPublic(), ListenAddrs: h.addrs, Protocols: h.protos,
			ObservedAddr: addrClient, ProtocolVersion: ProtocolVersion, AgentVersion: "a/1", SignedPeerRecord: rec,
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Unmarshal(c.m.Marshal())
			if err != nil {
				t.Fatal(err)
			}
			sameMessage(t, got, &c.m)
		})
	}
}

// TestUnmarshalShares: two messages carrying the same protocols and
// versions decode to strings that share their bytes, even with a collection
// between them; a string longer than maxInterned is a copy of its own, and
// the table holds at most maxInternedStrings.
func TestUnmarshalShares(t *testing.T) {
	interned.Lock()
	interned.m = nil // a table about to start over would drop what the first decode put in
	interned.Unlock()
	long := protocol.ID("/" + strings.Repeat("l", maxInterned))
	m := Message{Protocols: []protocol.ID{"/a/1.0.0", "/b/2.0.0", long}, ProtocolVersion: ProtocolVersion, AgentVersion: "agent/1"}
	b := m.Marshal()
	one, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	two, err := Unmarshal(slices.Clone(b))
	if err != nil {
		t.Fatal(err)
	}
	same := func(x, y string) bool { return unsafe.StringData(x) == unsafe.StringData(y) }
	for i := range one.Protocols {
		if shared := same(string(one.Protocols[i]), string(two.Protocols[i])); shared != (one.Protocols[i] != long) {
			t.Errorf("protocol %.20q decoded twice: shared %v", one.Protocols[i], shared)
		}
	}
	if !same(one.AgentVersion, two.AgentVersion) || !same(one.ProtocolVersion, two.ProtocolVersion) {
		t.Error("versions decoded twice into two copies")
	}
	sameMessage(t, two, &m)

	// Many distinct protocols: a message's first maxInternedPerMessage are
	// interned, the rest copied, and the table starts over when full.
	interned.Lock()
	interned.m = nil
	interned.Unlock()
	protos := func(from, n int) []byte {
		var b []byte
		for i := range n {
			b = pb.AppendString(b, fProtocols, fmt.Sprintf("/p/%d", from+i))
		}
		return b
	}
	for from := 0; from < 2*maxInternedStrings; from += maxInternedPerMessage {
		if _, err := Unmarshal(protos(from, maxInternedPerMessage)); err != nil {
			t.Fatal(err)
		}
	}
	big := protos(1<<20, maxInternedPerMessage+10)
	one, _ = Unmarshal(big)
	two, _ = Unmarshal(big)
	if n := len(two.Protocols); n != maxInternedPerMessage+10 {
		t.Fatalf("%d protocols decoded, want %d", n, maxInternedPerMessage+10)
	}
	if !same(string(one.Protocols[0]), string(two.Protocols[0])) || same(string(one.Protocols[maxInternedPerMessage]), string(two.Protocols[maxInternedPerMessage])) {
		t.Error("not the first maxInternedPerMessage protocols of a message interned")
	}
	interned.RLock()
	n := len(interned.m)
	interned.RUnlock()
	if n > maxInternedStrings {
		t.Fatalf("%d strings interned, bound %d", n, maxInternedStrings)
	}
}

func sameMessage(t *testing.T, got, want *Message) {
	t.Helper()
	if (got.PublicKey == nil) != (want.PublicKey == nil) || (got.PublicKey != nil && !got.PublicKey.Equal(want.PublicKey)) {
		t.Fatal("public key differs")
	}
	if fmt.Sprint(got.ListenAddrs) != fmt.Sprint(want.ListenAddrs) || fmt.Sprint(got.Protocols) != fmt.Sprint(want.Protocols) ||
		fmt.Sprint(got.ObservedAddr) != fmt.Sprint(want.ObservedAddr) || got.ProtocolVersion != want.ProtocolVersion ||
		got.AgentVersion != want.AgentVersion || !bytes.Equal(got.SignedPeerRecord, want.SignedPeerRecord) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func manyAddrs(n int) []ma.Multiaddr {
	out := make([]ma.Multiaddr, n)
	for i := range out {
		out[i] = ma.StringCast(fmt.Sprintf("/ip6/2001:db8::%x/udp/%d/quic-v1", i, 1000+i))
	}
	return out
}

func TestMarshalTrims(t *testing.T) {
	h := newHost(t, 8)
	var protos []protocol.ID
	for i := 0; i < 400; i++ {
		protos = append(protos, protocol.ID(fmt.Sprintf("/tachyon/test/%d/1.0.0", i)))
	}
	cases := []struct {
		name                string
		m                   Message
		keepRecord, allAddr bool
	}{
		{"many addrs", Message{PublicKey: h.key.GetPublic(), ListenAddrs: manyAddrs(300), SignedPeerRecord: []byte("r")}, true, false},
		{"huge record", Message{ListenAddrs: manyAddrs(2), SignedPeerRecord: make([]byte, 5000)}, false, true},
		{"many protocols", Message{ListenAddrs: manyAddrs(1), Protocols: protos}, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := c.m.Marshal()
			if len(b) >= MaxSendSize {
				t.Fatalf("message is %d bytes", len(b))
			}
			got, err := Unmarshal(b)
			if err != nil {
				t.Fatal(err)
			}
			if (len(got.SignedPeerRecord) > 0) != c.keepRecord {
				t.Fatalf("record kept = %v", len(got.SignedPeerRecord) > 0)
			}
			if c.allAddr != (len(got.ListenAddrs) == len(c.m.ListenAddrs)) {
				t.Fatalf("%d of %d addrs kept", len(got.ListenAddrs), len(c.m.ListenAddrs))
			}
			for i, a := range got.ListenAddrs {
				if !a.Equal(c.m.ListenAddrs[i]) {
					t.Fatal("kept addresses are not a prefix")
				}
			}
		})
	}
}

func TestServiceTrimsWithRecord(t *testing.T) {
	leakcheck.Check(t)
	srvHost := newHost(t, 9)
	srvHost.addrs = manyAddrs(200)
	res, err := runIdentify(t, srvHost, NewService(srvHost, "x"), "client")
	if err != nil {
		t.Fatal(err)
	}
	if res.Record() == nil || len(res.Message.ListenAddrs) == 0 || fmt.Sprint(res.Record().Addrs) != fmt.Sprint(res.Message.ListenAddrs) {
		t.Fatalf("record %v vs message %d addrs", res.Record(), len(res.Message.ListenAddrs))
	}
	if n := len((&Message{PublicKey: res.Message.PublicKey, ListenAddrs: res.Message.ListenAddrs, Protocols: res.Message.Protocols,
		ObservedAddr: res.Message.ObservedAddr, ProtocolVersion: res.Message.ProtocolVersion, AgentVersion: res.Message.AgentVersion,
		SignedPeerRecord: res.Message.SignedPeerRecord}).Marshal()); n >= MaxSendSize {
		t.Fatalf("sent %d bytes", n)
	}
}

func TestReadMerges(t *testing.T) {
	h := newHost(t, 10)
	rec, _ := record.SealPeerRecord(&record.PeerRecord{Seq: 3}, h.key)
	base := (&Message{PublicKey: h.key.GetPublic(), ListenAddrs: manyAddrs(1), AgentVersion: "old"}).Marshal()
	second := (&Message{ListenAddrs: manyAddrs(2)[1:], AgentVersion: "new", SignedPeerRecord: rec}).Marshal()
	stream := lp.Append(lp.Append(nil, base), second)
	m, err := Read(bytes.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.ListenAddrs) != 2 || m.AgentVersion != "new" || !bytes.Equal(m.SignedPeerRecord, rec) {
		t.Fatalf("merged %+v", m)
	}

	// Only MaxMessages messages are read; the rest stays in the stream.
	var many []byte
	for i := 0; i <= MaxMessages; i++ {
		many = lp.Append(many, (&Message{AgentVersion: fmt.Sprint(i)}).Marshal())
	}
	r := bytes.NewReader(many)
	m, err = Read(r)
	if err != nil {
		t.Fatal(err)
	}
	if m.AgentVersion != fmt.Sprint(MaxMessages-1) || r.Len() == 0 {
		t.Fatalf("agent %q, %d bytes left", m.AgentVersion, r.Len())
	}
	if _, err := Read(bytes.NewReader(nil)); err == nil {
		t.Fatal("empty stream accepted")
	}
}

func FuzzUnmarshal(f *testing.F) {
	h := newHost(f, 11, "/ip4/127.0.0.1/tcp/1")
	rec, _ := record.SealPeerRecord(&record.PeerRecord{Seq: 1, Addrs: h.addrs}, h.key)
	f.Add((&Message{PublicKey: h.key.GetPublic(), ListenAddrs: h.addrs, Protocols: h.protos, ObservedAddr: addrClient,
		ProtocolVersion: ProtocolVersion, AgentVersion: "a", SignedPeerRecord: rec}).Marshal())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Unmarshal(b)
		if err != nil {
			return
		}
		out := m.Marshal()
		if len(out) >= MaxSendSize {
			t.Fatalf("Marshal produced %d bytes", len(out))
		}
		if _, err := Unmarshal(out); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

// TestSignedRecordOpenedOnce: the same envelope sent again (another
// connection of the peer) opens to the record already verified, not
// verified again; an envelope that does not verify is never kept, nor is a
// record given to another peer; the table is bounded.
func TestSignedRecordOpenedOnce(t *testing.T) {
	opened.Reset()
	opens := 0
	openPeerRecord = func(b []byte) (*record.PeerRecord, *record.Envelope, error) {
		opens++
		return record.OpenPeerRecord(b)
	}
	t.Cleanup(func() { openPeerRecord = record.OpenPeerRecord })

	h := newHost(t, 41, "/ip4/192.0.2.1/tcp/4001", "/ip4/192.0.2.1/udp/4001/quic-v1")
	env, err := record.SealPeerRecord(&record.PeerRecord{Seq: 7, Addrs: h.addrs}, h.key)
	if err != nil {
		t.Fatal(err)
	}
	first := newSignedRecord(slices.Clone(env), h.id).Open()
	if first == nil || first.Seq != 7 || opens != 1 {
		t.Fatalf("record %+v after %d verifications", first, opens)
	}
	// What a caller does with its copy is its own.
	first.Addrs[0], first.Seq = nil, 8
	again := newSignedRecord(slices.Clone(env), h.id).Open()
	if opens != 1 {
		t.Fatal("the same envelope was verified again")
	}
	if again == nil || again.Seq != 7 || fmt.Sprint(again.Addrs) != fmt.Sprint(h.addrs) {
		t.Fatalf("the record kept was changed through a copy handed out: %+v", again)
	}
	if other := newSignedRecord(slices.Clone(env), newHost(t, 42).id).Open(); other != nil {
		t.Fatalf("another peer's record was taken: %+v", other)
	}

	bad := slices.Clone(env)
	bad[len(bad)-1] ^= 1 // the signature is the envelope's last field
	for range 2 {
		if rec := newSignedRecord(slices.Clone(bad), h.id).Open(); rec != nil {
			t.Fatalf("a record whose signature does not verify was opened: %+v", rec)
		}
	}
	_, kept := opened.Get(envelopeDigest(bad))
	if kept {
		t.Fatal("an envelope that did not verify was kept")
	}

	for seq := range uint64(maxOpened + 10) {
		e, err := record.SealPeerRecord(&record.PeerRecord{Seq: 100 + seq}, h.key)
		if err != nil {
			t.Fatal(err)
		}
		if rec := newSignedRecord(e, h.id).Open(); rec == nil || rec.Seq != 100+seq {
			t.Fatalf("record %d: %+v", seq, rec)
		}
	}
	n := opened.Len()
	if n > maxOpened {
		t.Fatalf("%d records kept, bound %d", n, maxOpened)
	}
}
