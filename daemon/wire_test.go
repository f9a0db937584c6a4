package daemon

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/pb"
)

// Request encoders, as a client writes them.

func encRequest(typ reqType, field int, sub []byte) []byte {
	b := pb.AppendVarint(nil, 1, uint64(typ))
	if sub != nil {
		b = pb.AppendBytes(b, field, sub)
	}
	return b
}

func encConnect(p peer.ID, addrs []ma.Multiaddr, timeoutSecs uint64) []byte {
	sub := pb.AppendBytes(nil, 1, []byte(p))
	for _, a := range addrs {
		sub = pb.AppendBytes(sub, 2, a.Bytes())
	}
	if timeoutSecs != 0 {
		sub = pb.AppendVarint(sub, 3, timeoutSecs)
	}
	return encRequest(reqConnect, 2, sub)
}

func encStreamOpen(p peer.ID, protos ...protocol.ID) []byte {
	sub := pb.AppendBytes(nil, 1, []byte(p))
	for _, pr := range protos {
		sub = pb.AppendString(sub, 2, string(pr))
	}
	return encRequest(reqStreamOpen, 3, sub)
}

func encStreamHandler(addr ma.Multiaddr, protos ...protocol.ID) []byte {
	sub := pb.AppendBytes(nil, 1, addr.Bytes())
	for _, pr := range protos {
		sub = pb.AppendString(sub, 2, string(pr))
	}
	return encRequest(reqStreamHandler, 4, sub)
}

func encDisconnect(p peer.ID) []byte {
	return encRequest(reqDisconnect, 7, pb.AppendBytes(nil, 1, []byte(p)))
}

// testResponse is a decoded Response.
type testResponse struct {
	hasType    bool
	typ        uint64
	errMsg     string
	hasErr     bool
	identify   *testPeerInfo
	peers      []testPeerInfo
	streamInfo *testStreamInfo
}

type testPeerInfo struct {
	id    peer.ID
	addrs []ma.Multiaddr
}

type testStreamInfo struct {
	peer  peer.ID
	addr  ma.Multiaddr
	proto string
}

func decodePeerInfo(b []byte) (testPeerInfo, error) {
	var pi testPeerInfo
	err := pb.ForEach(b, func(f pb.Field) error {
		switch f.Num {
		case 1:
			id, err := peer.IDFromBytes(f.Bytes)
			pi.id = id
			return err
		case 2:
			a, err := ma.NewMultiaddrBytes(f.Bytes)
			pi.addrs = append(pi.addrs, a)
			return err
		}
		return nil
	})
	return pi, err
}

func decodeStreamInfo(b []byte) (testStreamInfo, error) {
	var si testStreamInfo
	err := pb.ForEach(b, func(f pb.Field) error {
		var err error
		switch f.Num {
		case 1:
			si.peer, err = peer.IDFromBytes(f.Bytes)
		case 2:
			si.addr, err = ma.NewMultiaddrBytes(f.Bytes)
		case 3:
			si.proto = string(f.Bytes)
		}
		return err
	})
	return si, err
}

func decodeResponse(b []byte) (testResponse, error) {
	var r testResponse
	err := pb.ForEach(b, func(f pb.Field) error {
		switch f.Num {
		case 1:
			r.hasType, r.typ = true, f.Varint
		case 2:
			r.hasErr = true
			return pb.ForEach(f.Bytes, func(g pb.Field) error {
				if g.Num == 1 {
					r.errMsg = string(g.Bytes)
				}
				return nil
			})
		case 3:
			si, err := decodeStreamInfo(f.Bytes)
			r.streamInfo = &si
			return err
		case 4:
			pi, err := decodePeerInfo(f.Bytes)
			r.identify = &pi
			return err
		case 6:
			pi, err := decodePeerInfo(f.Bytes)
			r.peers = append(r.peers, pi)
			return err
		}
		return nil
	})
	return r, err
}

func testPeer(t testing.TB) peer.ID {
	t.Helper()
	k, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestParseRequestValid(t *testing.T) {
	p := testPeer(t)
	a := ma.StringCast("/ip4/127.0.0.1/tcp/4001")
	u := ma.StringCast("/unix/tmp/x.sock")

	r, err := parseRequest([]byte{0x08, 0x00}) // IDENTIFY as js writes it
	if err != nil || r.typ != reqIdentify {
		t.Fatalf("IDENTIFY: %+v %v", r, err)
	}

	r, err = parseRequest(encConnect(p, []ma.Multiaddr{a, u}, 7))
	if err != nil {
		t.Fatal(err)
	}
	if r.typ != reqConnect || r.connect.peer != p || len(r.connect.addrs) != 2 ||
		!r.connect.addrs[0].Equal(a) || !r.connect.addrs[1].Equal(u) || r.connect.timeout != 7*time.Second {
		t.Errorf("CONNECT parsed as %+v", r.connect)
	}
	r, err = parseRequest(encConnect(p, nil, 1<<40))
	if err != nil || r.connect.timeout != maxTimeout {
		t.Errorf("huge timeout: %v %v", r.connect, err)
	}

	r, err = parseRequest(encStreamOpen(p, "/a/1", "/b/2"))
	if err != nil {
		t.Fatal(err)
	}
	if r.streamOpen.peer != p || !slices.Equal(r.streamOpen.protos, []protocol.ID{"/a/1", "/b/2"}) || r.streamOpen.timeout != 0 {
		t.Errorf("STREAM_OPEN parsed as %+v", r.streamOpen)
	}

	r, err = parseRequest(encStreamHandler(a, "/echo/1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	if !r.streamHandler.addr.Equal(a) || !slices.Equal(r.streamHandler.protos, []protocol.ID{"/echo/1.0.0"}) {
		t.Errorf("STREAM_HANDLER parsed as %+v", r.streamHandler)
	}

	r, err = parseRequest(encDisconnect(p))
	if err != nil || r.disconnect.peer != p {
		t.Errorf("DISCONNECT: %+v %v", r.disconnect, err)
	}

	// Operations we do not serve parse without looking inside; unknown
	// fields are skipped.
	for _, typ := range []reqType{reqDHT, reqListPeers, reqConnManager, reqPubsub, reqPeerstore, 42} {
		msg := encRequest(typ, int(typ)+1, []byte{0xff, 0xff})
		if typ == 42 || typ == reqListPeers {
			msg = pb.AppendBytes(encRequest(typ, 0, nil), 100, []byte("future"))
		}
		if r, err := parseRequest(msg); err != nil || r.typ != typ {
			t.Errorf("%s: %+v %v", typ, r, err)
		}
	}
}

func TestParseRequestMalformed(t *testing.T) {
	p := testPeer(t)
	a := ma.StringCast("/ip4/127.0.0.1/tcp/4001")
	cases := []struct {
		name string
		msg  []byte
	}{
		{"empty", nil},
		{"no type", pb.AppendBytes(nil, 2, encConnect(p, nil, 0)[2:])},
		{"type as bytes", pb.AppendBytes(nil, 1, []byte{0})},
		{"garbage", []byte{0xff, 0xff, 0xff}},
		{"truncated varint", []byte{0x08}},
		{"field zero", []byte{0x00, 0x00}},
		{"CONNECT without connect", encRequest(reqConnect, 0, nil)},
		{"CONNECT without peer", encRequest(reqConnect, 2, pb.AppendBytes(nil, 2, a.Bytes()))},
		{"CONNECT bad peer", encRequest(reqConnect, 2, pb.AppendBytes(nil, 1, []byte("not a multihash")))},
		{"CONNECT bad addr", encRequest(reqConnect, 2, pb.AppendBytes(pb.AppendBytes(nil, 1, []byte(p)), 2, []byte{0xff, 0x01}))},
		{"CONNECT negative timeout", encRequest(reqConnect, 2, pb.AppendVarint(pb.AppendBytes(nil, 1, []byte(p)), 3, ^uint64(0)))},
		{"CONNECT timeout as bytes", encRequest(reqConnect, 2, pb.AppendBytes(pb.AppendBytes(nil, 1, []byte(p)), 3, nil))},
		{"connect as varint", pb.AppendVarint(encRequest(reqConnect, 0, nil), 2, 1)},
		{"STREAM_OPEN without protocols", encStreamOpen(p)},
		{"STREAM_OPEN empty protocol", encStreamOpen(p, "")},
		{"STREAM_OPEN invalid utf8 protocol", encStreamOpen(p, "\xff\xfe")},
		{"STREAM_OPEN without streamOpen", encRequest(reqStreamOpen, 0, nil)},
		{"STREAM_HANDLER without addr", encRequest(reqStreamHandler, 4, pb.AppendString(nil, 2, "/x"))},
		{"STREAM_HANDLER without protocols", encStreamHandler(a)},
		{"STREAM_HANDLER empty addr", encRequest(reqStreamHandler, 4, pb.AppendString(pb.AppendBytes(nil, 1, nil), 2, "/x"))},
		{"DISCONNECT without peer", encRequest(reqDisconnect, 7, []byte{})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := parseRequest(c.msg)
			if err == nil {
				t.Fatalf("parsed %x as %+v", c.msg, r)
			}
			if !errors.Is(err, errBadRequest) {
				t.Errorf("error %v does not wrap errBadRequest", err)
			}
		})
	}
}

// Every strict prefix of a valid request with a sub-message fails cleanly.
func TestParseRequestTruncated(t *testing.T) {
	p := testPeer(t)
	a := ma.StringCast("/ip4/127.0.0.1/tcp/4001")
	for _, msg := range [][]byte{encConnect(p, []ma.Multiaddr{a}, 5), encStreamOpen(p, "/echo/1.0.0"), encStreamHandler(a, "/echo/1.0.0"), encDisconnect(p)} {
		for i := range len(msg) {
			if r, err := parseRequest(msg[:i]); err == nil {
				t.Errorf("prefix %x of %x parsed as %+v", msg[:i], msg, r)
			}
		}
	}
}

func TestResponseEncoding(t *testing.T) {
	// The captured IDENTIFY exchange: OK is written explicitly as 08 00.
	if got := appendOK(nil); !bytes.Equal(got, []byte{0x08, 0x00}) {
		t.Errorf("OK = %x", got)
	}
	if got := appendError(nil, "no"); !bytes.Equal(got, []byte{0x08, 0x01, 0x12, 0x04, 0x0a, 0x02, 'n', 'o'}) {
		t.Errorf("ERROR = %x", got)
	}
	p := testPeer(t)
	a := ma.StringCast("/ip4/127.0.0.1/tcp/4001")
	r, err := decodeResponse(appendIdentify(nil, p, []ma.Multiaddr{a}))
	if err != nil || !r.hasType || r.typ != respOK || r.identify == nil || r.identify.id != p || len(r.identify.addrs) != 1 || !r.identify.addrs[0].Equal(a) {
		t.Errorf("identify: %+v %v", r, err)
	}
	// An identify with no addresses still carries the identify message.
	r, err = decodeResponse(appendIdentify(nil, p, nil))
	if err != nil || r.identify == nil || len(r.identify.addrs) != 0 {
		t.Errorf("identify without addrs: %+v %v", r, err)
	}
	r, err = decodeResponse(appendPeers(nil, []peer.AddrInfo{{ID: p, Addrs: []ma.Multiaddr{a}}}))
	if err != nil || len(r.peers) != 1 || r.peers[0].id != p || !r.peers[0].addrs[0].Equal(a) {
		t.Errorf("peers: %+v %v", r, err)
	}
	r, err = decodeResponse(appendStreamOpened(nil, streamInfo{peer: p, addr: a, proto: "/echo/1.0.0"}))
	if err != nil || r.streamInfo == nil || r.streamInfo.peer != p || !r.streamInfo.addr.Equal(a) || r.streamInfo.proto != "/echo/1.0.0" {
		t.Errorf("stream info: %+v %v", r, err)
	}
}

// FuzzParseRequest: parseRequest never panics, and what it accepts carries
// the sub-message its type needs.
func FuzzParseRequest(f *testing.F) {
	p := testPeer(f)
	a := ma.StringCast("/ip4/127.0.0.1/tcp/4001")
	f.Add([]byte{0x08, 0x00})
	f.Add(encConnect(p, []ma.Multiaddr{a}, 5))
	f.Add(encStreamOpen(p, "/echo/1.0.0"))
	f.Add(encStreamHandler(a, "/echo/1.0.0"))
	f.Add(encDisconnect(p))
	f.Add(encRequest(reqDHT, 5, []byte{0x08, 0x00}))
	f.Fuzz(func(t *testing.T, msg []byte) {
		r, err := parseRequest(msg)
		if err != nil {
			if !errors.Is(err, errBadRequest) {
				t.Fatalf("error %v does not wrap errBadRequest", err)
			}
			return
		}
		switch r.typ {
		case reqConnect:
			if r.connect == nil || r.connect.peer == "" || r.connect.timeout < 0 {
				t.Fatalf("CONNECT accepted without a valid connect: %+v", r.connect)
			}
		case reqStreamOpen:
			if r.streamOpen == nil || len(r.streamOpen.protos) == 0 {
				t.Fatalf("STREAM_OPEN accepted without protocols: %+v", r.streamOpen)
			}
		case reqStreamHandler:
			if r.streamHandler == nil || r.streamHandler.addr == nil || len(r.streamHandler.protos) == 0 {
				t.Fatalf("STREAM_HANDLER accepted incomplete: %+v", r.streamHandler)
			}
		case reqDisconnect:
			if r.disconnect == nil || r.disconnect.peer == "" {
				t.Fatalf("DISCONNECT accepted without peer")
			}
		}
	})
}
