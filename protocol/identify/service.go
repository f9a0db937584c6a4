package identify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/core/record"
	"github.com/tachyon-p2p/tachyon/internal/verified"
)

// ProtocolVersion is the protocolVersion every libp2p implementation sends.
const ProtocolVersion = "ipfs/0.1.0"

// StreamTimeout bounds how long a handler waits on a stream without a context.
const StreamTimeout = 30 * time.Second

// Host is what the service needs from the local node.
type Host interface {
	ID() peer.ID
	PrivateKey() crypto.PrivKey
	// ListenAddrs are the addresses to tell a peer that we see at remote
	// (a peer on our LAN may be told private addresses the Internet is
	// not).
	ListenAddrs(remote ma.Multiaddr) []ma.Multiaddr
	Protocols() []protocol.ID
}

// Result is what a peer told us about itself.
type Result struct {
	Peer    peer.ID
	Message *Message
	signed  *SignedRecord // nil when the peer sent no signed record
}

// Record returns the peer's signed peer record, opened on the first call
// (see SignedRecord); nil when the peer sent none, or one that does not
// verify or is another peer's (the rest of the result is still valid).
func (r *Result) Record() *record.PeerRecord {
	if r.signed == nil {
		return nil
	}
	return r.signed.Open()
}

// Signed returns the peer's signed peer record as received, not opened yet;
// nil when the peer sent none.
func (r *Result) Signed() *SignedRecord { return r.signed }

// SignedRecord is a signed peer record as a peer sent it: an envelope whose
// signature is checked, and whose record is parsed, only when Open is first
// called (RFC 0003: validated before it is deserialized). A node that
// never uses a peer's certified addresses never spends the verification (an
// Ed25519 signature check, a few per cent of a Noise connection's CPU).
type SignedRecord struct {
	envelope []byte
	peer     peer.ID
	once     sync.Once
	rec      *record.PeerRecord
}

// newSignedRecord holds envelope, a signed peer record that p sent.
func newSignedRecord(envelope []byte, p peer.ID) *SignedRecord {
	return &SignedRecord{envelope: envelope, peer: p}
}

// Open verifies the envelope, once, and returns its record; nil when the
// signature does not verify, the envelope is malformed, or the record is
// another peer's. Safe for concurrent use.
func (s *SignedRecord) Open() *record.PeerRecord {
	s.once.Do(func() {
		if rec := openRecord(s.envelope); rec != nil && rec.PeerID == s.peer {
			s.rec = rec
		}
		s.envelope = nil
	})
	return s.rec
}

// maxOpened bounds the records openRecord keeps.
const maxOpened = 256

// opened holds records that verified, by a digest of their envelope's
// bytes: a peer sends the same record on each of its connections and
// reconnections (a new one only when its addresses change), and each copy
// would otherwise cost a signature check. Only records that verified are
// kept, so a peer sending bad envelopes cannot fill it with them, and the
// key covers the whole envelope: a hit is the very bytes that verified.
var opened = verified.New[*record.PeerRecord](maxOpened / 2)

// openPeerRecord is record.OpenPeerRecord; tests count its calls.
var openPeerRecord = record.OpenPeerRecord

// envelopeDigest names an envelope in opened.
func envelopeDigest(envelope []byte) verified.Digest {
	return verified.Sum("libp2p-peer-record-envelope", envelope)
}

// openRecord verifies envelope and returns its record, or nil. The record
// is the caller's copy: the one kept is never handed out.
func openRecord(envelope []byte) *record.PeerRecord {
	d := envelopeDigest(envelope)
	rec, ok := opened.Get(d)
	if !ok {
		var err error
		if rec, _, err = openPeerRecord(envelope); err != nil {
			return nil
		}
		opened.Add(d, rec)
	}
	cp := *rec
	cp.Addrs = slices.Clone(rec.Addrs)
	return &cp
}

// Direction says whether a message was sent or received.
type Direction uint8

const (
	Sent Direction = iota
	Received
)

// Kind tells an identify answer from a push.
type Kind uint8

const (
	KindIdentify Kind = iota
	KindPush
)

// Tracer is told about every identify message exchanged, after the
// exchange ended (err nil: it went through). It must not block.
type Tracer interface {
	Message(dir Direction, kind Kind, err error)
}

// Service answers identify requests and pushes, and identifies peers.
type Service struct {
	host  Host
	agent string
	// Tracer, if set before the service is used, is told about every
	// message.
	Tracer Tracer

	mu sync.Mutex // guards the cached signed record
	// The record is re-signed only when the address list changes, with a
	// sequence number that always grows. Peers told different lists (LAN
	// and Internet) make it re-sign as they alternate: a signature costs
	// less than a peer rejecting a record older than one it holds.
	recAddrs  []ma.Multiaddr
	recSealed []byte
	seq       uint64
}

// NewService returns a service answering for h with the given agent version.
func NewService(h Host, agentVersion string) *Service {
	return &Service{host: h, agent: agentVersion}
}

// Handle answers an inbound /ipfs/id/1.0.0 stream and closes it.
func (s *Service) Handle(st network.Stream) {
	_ = st.SetDeadline(time.Now().Add(StreamTimeout))
	err := WriteFinal(st, s.message(st.RemoteMultiaddr()))
	s.trace(Sent, KindIdentify, err)
	if err != nil {
		_ = st.Reset()
		return
	}
	_ = st.Close()
}

func (s *Service) trace(dir Direction, kind Kind, err error) {
	if t := s.Tracer; t != nil {
		t.Message(dir, kind, err)
	}
}

// Push sends our current identify message on a negotiated
// /ipfs/id/push/1.0.0 stream and closes it.
func (s *Service) Push(ctx context.Context, st network.Stream) error {
	stop := deadlineOnCancel(ctx, st)
	defer stop()
	err := WriteFinal(st, s.message(st.RemoteMultiaddr()))
	s.trace(Sent, KindPush, err)
	if err != nil {
		_ = st.Reset()
		return fmt.Errorf("identify: pushing to %s: %w", st.RemotePeer(), err)
	}
	return st.Close()
}

// Identify reads the remote peer's identify message from a negotiated
// /ipfs/id/1.0.0 stream it opened, verifies it and closes the stream.
func (s *Service) Identify(ctx context.Context, st network.Stream) (*Result, error) {
	stop := deadlineOnCancel(ctx, st)
	defer stop()
	res, err := s.receive(st)
	s.trace(Received, KindIdentify, err)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return nil, fmt.Errorf("identify: identifying %s: %w", st.RemotePeer(), err)
	}
	return res, nil
}

// HandlePush reads an inbound identify push and closes the stream.
func (s *Service) HandlePush(st network.Stream) (*Result, error) {
	_ = st.SetDeadline(time.Now().Add(StreamTimeout))
	res, err := s.receive(st)
	s.trace(Received, KindPush, err)
	if err != nil {
		return nil, fmt.Errorf("identify: push from %s: %w", st.RemotePeer(), err)
	}
	return res, nil
}

func (s *Service) receive(st network.Stream) (*Result, error) {
	_ = st.CloseWrite() // we never write; let the peer see EOF early
	m, err := Read(st)
	if err != nil {
		_ = st.Reset()
		return nil, err
	}
	_ = st.Close()
	remote := st.RemotePeer()
	if m.PublicKey != nil && !remote.MatchesPublicKey(m.PublicKey) {
		return nil, errors.New("public key does not match the peer ID")
	}
	res := &Result{Peer: remote, Message: m}
	if len(m.SignedPeerRecord) > 0 {
		// Opened when first asked for; a bad record costs the peer its
		// record, not its identify.
		res.signed = newSignedRecord(m.SignedPeerRecord, remote)
	}
	return res, nil
}

// deadlineOnCancel unblocks stream I/O when ctx ends; call stop when done.
func deadlineOnCancel(ctx context.Context, st network.Stream) (stop func() bool) {
	return context.AfterFunc(ctx, func() { _ = st.SetDeadline(time.Unix(1, 0)) })
}

// message builds our identify message for a peer observed at observed.
func (s *Service) message(observed ma.Multiaddr) *Message {
	key := s.host.PrivateKey()
	addrs := s.host.ListenAddrs(observed)
	m := &Message{
		ListenAddrs:     addrs,
		Protocols:       s.host.Protocols(),
		ObservedAddr:    observed,
		ProtocolVersion: ProtocolVersion,
		AgentVersion:    s.agent,
	}
	if key == nil {
		return m
	}
	m.PublicKey = key.GetPublic()
	// Trim the addresses first, so the signed record lists the same ones as
	// the message and the record is not the part Marshal has to drop.
	m.ListenAddrs = addrs[:fitAddrs(m, key)]
	// A record without addresses is worse than none: js-libp2p lets a
	// signed record replace the addresses it knows for us (such as the
	// relay address it reached us on), and sends none itself when it has
	// no address.
	if len(m.ListenAddrs) > 0 {
		m.SignedPeerRecord = s.signedRecord(m.ListenAddrs, key)
	}
	return m
}

// fitAddrs returns how many listen addresses fit beside a signed record that
// repeats them. Each address costs about twice its size (once in the message,
// once in the record).
func fitAddrs(m *Message, key crypto.PrivKey) int {
	base := *m
	base.ListenAddrs = nil
	budget := MaxSendSize - 1 - len(base.Marshal()) - recordOverhead(key)
	n := 0
	for _, a := range m.ListenAddrs {
		cost := 2*bytesField(a.Bytes()) + 3
		if cost > budget {
			break
		}
		budget -= cost
		n++
	}
	return n
}

// recordOverhead bounds the size of an empty signed peer record field.
func recordOverhead(key crypto.PrivKey) int {
	pub, _ := crypto.MarshalPublicKey(key.GetPublic())
	sigMax := 80 // Ed25519 64, ECDSA/secp256k1 DER ≤ 72
	if key.Type() == crypto.RSA {
		sigMax = crypto.MaxRSAKeyBits / 8
	}
	// envelope fields + peer ID (≤ 44 with tag) + seq + type + field 8 header
	return len(pub) + sigMax + 44 + 11 + 4 + 3*4 + 4
}

func (s *Service) signedRecord(addrs []ma.Multiaddr, key crypto.PrivKey) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recSealed != nil && sameAddrs(s.recAddrs, addrs) {
		return s.recSealed
	}
	seq := uint64(time.Now().UnixNano())
	if seq <= s.seq {
		seq = s.seq + 1
	}
	sealed, err := record.SealPeerRecord(&record.PeerRecord{Seq: seq, Addrs: addrs}, key)
	if err != nil {
		return nil // identify still works without a record
	}
	s.seq = seq
	s.recAddrs = append([]ma.Multiaddr(nil), addrs...)
	s.recSealed = sealed
	return sealed
}

func sameAddrs(a, b []ma.Multiaddr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}
