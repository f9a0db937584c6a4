package daemon

// The control protocol's messages (p2pd's daemon.proto), hand-encoded.
// Every message is a varint length prefix followed by protobuf bytes.
//
//	Request  {type=1 enum, connect=2, streamOpen=3, streamHandler=4, dht=5,
//	          connManager=6, disconnect=7, pubsub=8, peerStore=9}
//	Response {type=1 enum (OK 0, ERROR 1), error=2 {msg=1}, streamInfo=3,
//	          identify=4, dht=5, peers=6 repeated, pubsub=7, peerStore=8}
//	ConnectRequest       {peer=1 bytes, addrs=2 repeated bytes, timeout=3 int64 seconds}
//	StreamOpenRequest    {peer=1 bytes, proto=2 repeated string, timeout=3 int64 seconds}
//	StreamHandlerRequest {addr=1 bytes, proto=2 repeated string}
//	DisconnectRequest    {peer=1 bytes}
//	IdentifyResponse     {id=1 bytes, addrs=2 repeated bytes}
//	PeerInfo             {id=1 bytes, addrs=2 repeated bytes}
//	StreamInfo           {peer=1 bytes, addr=2 bytes, proto=3 string}
//
// Peer IDs are multihash bytes and addresses binary multiaddrs. The
// Response type is always written, OK included: js clients treat a missing
// type as a failure.

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/pb"
)

// reqType is Request.type.
type reqType uint64

const (
	reqIdentify      reqType = 0
	reqConnect       reqType = 1
	reqStreamOpen    reqType = 2
	reqStreamHandler reqType = 3
	reqDHT           reqType = 4
	reqListPeers     reqType = 5
	reqConnManager   reqType = 6
	reqDisconnect    reqType = 7
	reqPubsub        reqType = 8
	reqPeerstore     reqType = 9
)

// label names t for a Tracer, from a fixed set.
func (t reqType) label() string {
	switch t {
	case reqIdentify:
		return "identify"
	case reqConnect:
		return "connect"
	case reqStreamOpen:
		return "stream_open"
	case reqStreamHandler:
		return "stream_handler"
	case reqDHT:
		return "dht"
	case reqListPeers:
		return "list_peers"
	case reqConnManager:
		return "connmanager"
	case reqDisconnect:
		return "disconnect"
	case reqPubsub:
		return "pubsub"
	case reqPeerstore:
		return "peerstore"
	}
	return "unknown"
}

func (t reqType) String() string {
	switch t {
	case reqIdentify:
		return "IDENTIFY"
	case reqConnect:
		return "CONNECT"
	case reqStreamOpen:
		return "STREAM_OPEN"
	case reqStreamHandler:
		return "STREAM_HANDLER"
	case reqDHT:
		return "DHT"
	case reqListPeers:
		return "LIST_PEERS"
	case reqConnManager:
		return "CONNMANAGER"
	case reqDisconnect:
		return "DISCONNECT"
	case reqPubsub:
		return "PUBSUB"
	case reqPeerstore:
		return "PEERSTORE"
	}
	return fmt.Sprintf("type %d", uint64(t))
}

// Response types.
const (
	respOK    = 0
	respError = 1
)

// Limits on what a request may carry.
const (
	maxProtoLen = 1024
	maxTimeout  = time.Hour
)

// errBadRequest is wrapped by every parse error.
var errBadRequest = errors.New("malformed request")

// request is a parsed Request. Exactly the sub-message its type needs is
// set; sub-messages of operations we do not support are not parsed.
type request struct {
	typ           reqType
	connect       *connectReq
	streamOpen    *streamOpenReq
	streamHandler *streamHandlerReq
	disconnect    *disconnectReq
}

type connectReq struct {
	peer    peer.ID
	addrs   []ma.Multiaddr
	timeout time.Duration // 0: the server's default
}

type streamOpenReq struct {
	peer    peer.ID
	protos  []protocol.ID
	timeout time.Duration
}

type streamHandlerReq struct {
	addr   ma.Multiaddr
	protos []protocol.ID
}

type disconnectReq struct {
	peer peer.ID
}

// malformed marks err as a parse error, once.
func malformed(err error) error {
	if errors.Is(err, errBadRequest) {
		return err
	}
	return fmt.Errorf("%w: %w", errBadRequest, err)
}

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

// parseRequest decodes and validates a Request. It fails on malformed
// protobuf, a missing type, or a missing or invalid sub-message for the
// operations the daemon serves. Unknown fields are skipped.
func parseRequest(b []byte) (request, error) {
	var (
		r       request
		hasType bool
		subs    = map[int][]byte{}
	)
	err := pb.ForEach(b, func(f pb.Field) error {
		switch f.Num {
		case 1:
			if f.Wire != pb.WireVarint {
				return badRequest("type has wire type %d", f.Wire)
			}
			r.typ, hasType = reqType(f.Varint), true
		case 2, 3, 4, 5, 6, 7, 8, 9:
			if f.Wire != pb.WireBytes {
				return badRequest("field %d has wire type %d", f.Num, f.Wire)
			}
			// A repeated embedded message is merged; the last one wins here,
			// which is all the daemon's clients ever send.
			subs[f.Num] = f.Bytes
		}
		return nil
	})
	if err != nil {
		return request{}, malformed(err)
	}
	if !hasType {
		return request{}, badRequest("no request type")
	}
	switch r.typ {
	case reqConnect:
		sub, ok := subs[2]
		if !ok {
			return request{}, badRequest("CONNECT without connect field")
		}
		r.connect, err = parseConnect(sub)
	case reqStreamOpen:
		sub, ok := subs[3]
		if !ok {
			return request{}, badRequest("STREAM_OPEN without streamOpen field")
		}
		r.streamOpen, err = parseStreamOpen(sub)
	case reqStreamHandler:
		sub, ok := subs[4]
		if !ok {
			return request{}, badRequest("STREAM_HANDLER without streamHandler field")
		}
		r.streamHandler, err = parseStreamHandler(sub)
	case reqDisconnect:
		sub, ok := subs[7]
		if !ok {
			return request{}, badRequest("DISCONNECT without disconnect field")
		}
		r.disconnect, err = parseDisconnect(sub)
	}
	if err != nil {
		return request{}, err
	}
	return r, nil
}

func parseConnect(b []byte) (*connectReq, error) {
	c := &connectReq{}
	var hasPeer bool
	err := pb.ForEach(b, func(f pb.Field) error {
		var err error
		switch f.Num {
		case 1:
			c.peer, err = peerField("connect.peer", f)
			hasPeer = true
		case 2:
			var a ma.Multiaddr
			a, err = addrField("connect.addrs", f)
			c.addrs = append(c.addrs, a)
		case 3:
			c.timeout, err = timeoutField("connect.timeout", f)
		}
		return err
	})
	if err != nil {
		return nil, malformed(err)
	}
	if !hasPeer {
		return nil, badRequest("connect without peer")
	}
	return c, nil
}

func parseStreamOpen(b []byte) (*streamOpenReq, error) {
	s := &streamOpenReq{}
	var hasPeer bool
	err := pb.ForEach(b, func(f pb.Field) error {
		var err error
		switch f.Num {
		case 1:
			s.peer, err = peerField("streamOpen.peer", f)
			hasPeer = true
		case 2:
			var p protocol.ID
			p, err = protoField("streamOpen.proto", f)
			s.protos = append(s.protos, p)
		case 3:
			s.timeout, err = timeoutField("streamOpen.timeout", f)
		}
		return err
	})
	if err != nil {
		return nil, malformed(err)
	}
	if !hasPeer {
		return nil, badRequest("streamOpen without peer")
	}
	if len(s.protos) == 0 {
		return nil, badRequest("streamOpen without protocols")
	}
	return s, nil
}

func parseStreamHandler(b []byte) (*streamHandlerReq, error) {
	s := &streamHandlerReq{}
	err := pb.ForEach(b, func(f pb.Field) error {
		var err error
		switch f.Num {
		case 1:
			s.addr, err = addrField("streamHandler.addr", f)
		case 2:
			var p protocol.ID
			p, err = protoField("streamHandler.proto", f)
			s.protos = append(s.protos, p)
		}
		return err
	})
	if err != nil {
		return nil, malformed(err)
	}
	if s.addr == nil {
		return nil, badRequest("streamHandler without addr")
	}
	if len(s.protos) == 0 {
		return nil, badRequest("streamHandler without protocols")
	}
	return s, nil
}

func parseDisconnect(b []byte) (*disconnectReq, error) {
	d := &disconnectReq{}
	var hasPeer bool
	err := pb.ForEach(b, func(f pb.Field) error {
		if f.Num != 1 {
			return nil
		}
		var err error
		d.peer, err = peerField("disconnect.peer", f)
		hasPeer = true
		return err
	})
	if err != nil {
		return nil, malformed(err)
	}
	if !hasPeer {
		return nil, badRequest("disconnect without peer")
	}
	return d, nil
}

func peerField(name string, f pb.Field) (peer.ID, error) {
	if f.Wire != pb.WireBytes {
		return "", fmt.Errorf("%s has wire type %d", name, f.Wire)
	}
	id, err := peer.IDFromBytes(f.Bytes)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return id, nil
}

func addrField(name string, f pb.Field) (ma.Multiaddr, error) {
	if f.Wire != pb.WireBytes {
		return nil, fmt.Errorf("%s has wire type %d", name, f.Wire)
	}
	a, err := ma.NewMultiaddrBytes(f.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(a) == 0 {
		return nil, fmt.Errorf("%s: empty multiaddr", name)
	}
	return a, nil
}

func protoField(name string, f pb.Field) (protocol.ID, error) {
	if f.Wire != pb.WireBytes {
		return "", fmt.Errorf("%s has wire type %d", name, f.Wire)
	}
	if len(f.Bytes) == 0 || len(f.Bytes) > maxProtoLen || !utf8.Valid(f.Bytes) {
		return "", fmt.Errorf("%s: invalid protocol id (%d bytes)", name, len(f.Bytes))
	}
	return protocol.ID(f.Bytes), nil
}

// timeoutField reads an int64 count of seconds; 0 means "the default".
func timeoutField(name string, f pb.Field) (time.Duration, error) {
	if f.Wire != pb.WireVarint {
		return 0, fmt.Errorf("%s has wire type %d", name, f.Wire)
	}
	secs := int64(f.Varint)
	if secs < 0 {
		return 0, fmt.Errorf("%s: negative timeout %d", name, secs)
	}
	if secs >= int64(maxTimeout/time.Second) {
		return maxTimeout, nil
	}
	return time.Duration(secs) * time.Second, nil
}

// appendOK appends a bare OK Response.
func appendOK(b []byte) []byte {
	return pb.AppendVarint(b, 1, respOK)
}

// appendError appends an ERROR Response carrying msg.
func appendError(b []byte, msg string) []byte {
	b = pb.AppendVarint(b, 1, respError)
	return pb.AppendBytes(b, 2, pb.AppendString(nil, 1, msg))
}

// appendIdentify appends an OK Response with IdentifyResponse{id, addrs}.
func appendIdentify(b []byte, id peer.ID, addrs []ma.Multiaddr) []byte {
	b = appendOK(b)
	return pb.AppendBytes(b, 4, appendPeerInfo(nil, id, addrs))
}

// appendPeers appends an OK Response listing peers, each as PeerInfo.
func appendPeers(b []byte, peers []peer.AddrInfo) []byte {
	b = appendOK(b)
	for _, p := range peers {
		b = pb.AppendBytes(b, 6, appendPeerInfo(nil, p.ID, p.Addrs))
	}
	return b
}

// appendPeerInfo appends PeerInfo{id, addrs}; IdentifyResponse has the same
// shape.
func appendPeerInfo(b []byte, id peer.ID, addrs []ma.Multiaddr) []byte {
	b = pb.AppendBytes(b, 1, []byte(id))
	for _, a := range addrs {
		b = pb.AppendBytes(b, 2, a.Bytes())
	}
	return b
}

// streamInfo describes a stream: on STREAM_OPEN inside the OK Response, on
// STREAM_HANDLER as the first message on the dialed-back connection.
type streamInfo struct {
	peer  peer.ID
	addr  ma.Multiaddr
	proto protocol.ID
}

func appendStreamInfo(b []byte, si streamInfo) []byte {
	b = pb.AppendBytes(b, 1, []byte(si.peer))
	var addr []byte
	if si.addr != nil {
		addr = si.addr.Bytes()
	}
	b = pb.AppendBytes(b, 2, addr)
	return pb.AppendString(b, 3, string(si.proto))
}

// appendStreamOpened appends an OK Response carrying si.
func appendStreamOpened(b []byte, si streamInfo) []byte {
	b = appendOK(b)
	return pb.AppendBytes(b, 3, appendStreamInfo(nil, si))
}
