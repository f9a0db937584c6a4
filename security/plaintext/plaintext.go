// Package plaintext is the insecure /plaintext/2.0.0 channel: each side
// sends its peer ID and public key, and nothing is encrypted or signed.
// It exists for tests and the daemon's interop suite; a host offers it only
// when asked explicitly.
package plaintext

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/lp"
	"github.com/tachyon-p2p/tachyon/internal/pb"
)

// ID is the protocol id.
const ID protocol.ID = "/plaintext/2.0.0"

// maxExchange bounds the peer's message; an RSA-8192 key fits easily.
const maxExchange = 4096

// Transport is the plaintext security transport.
type Transport struct {
	key   crypto.PrivKey
	id    peer.ID
	pbKey []byte
}

// New returns a plaintext transport for the local key.
func New(key crypto.PrivKey) (*Transport, error) {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("plaintext: %w", err)
	}
	pk, err := crypto.MarshalPublicKey(key.GetPublic())
	if err != nil {
		return nil, fmt.Errorf("plaintext: %w", err)
	}
	return &Transport{key: key, id: id, pbKey: pk}, nil
}

// ID implements network.SecureTransport.
func (t *Transport) ID() protocol.ID { return ID }

// SecureInbound implements network.SecureTransport.
func (t *Transport) SecureInbound(ctx context.Context, c net.Conn, remote peer.ID) (network.SecureConn, error) {
	return t.handshake(ctx, c, remote)
}

// SecureOutbound implements network.SecureTransport.
func (t *Transport) SecureOutbound(ctx context.Context, c net.Conn, remote peer.ID) (network.SecureConn, error) {
	return t.handshake(ctx, c, remote)
}

// Exchange is the one message each side sends.
type Exchange struct {
	ID     peer.ID
	PubKey crypto.PubKey
}

// Marshal encodes the Exchange message {id=1 bytes, pubkey=2 PublicKey}.
func marshal(id peer.ID, pbKey []byte) []byte {
	b := pb.AppendBytes(nil, 1, []byte(id))
	return pb.AppendBytes(b, 2, pbKey)
}

// Unmarshal decodes and checks an Exchange: the key must derive the ID.
func Unmarshal(b []byte) (*Exchange, error) {
	var idb, kb []byte
	err := pb.ForEach(b, func(f pb.Field) error {
		switch {
		case f.Num == 1 && f.Wire == pb.WireBytes:
			idb = f.Bytes
		case f.Num == 2 && f.Wire == pb.WireBytes:
			// Protobuf merges repeated occurrences of this embedded message,
			// so taking the last alone could accept what other peers reject.
			if kb != nil {
				return errors.New("plaintext: exchange with more than one public key")
			}
			kb = f.Bytes
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if idb == nil || kb == nil {
		return nil, errors.New("plaintext: exchange lacks id or key")
	}
	id, err := peer.IDFromBytes(idb)
	if err != nil {
		return nil, fmt.Errorf("plaintext: peer id: %w", err)
	}
	k, err := crypto.UnmarshalPublicKey(kb)
	if err != nil {
		return nil, fmt.Errorf("plaintext: public key: %w", err)
	}
	if !id.MatchesPublicKey(k) {
		return nil, fmt.Errorf("plaintext: key does not match peer id %s", id)
	}
	return &Exchange{ID: id, PubKey: k}, nil
}

func (t *Transport) handshake(ctx context.Context, c net.Conn, remote peer.ID) (network.SecureConn, error) {
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
		defer c.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	// Both sides write first; a goroutine keeps an unbuffered conn from
	// deadlocking.
	werr := make(chan error, 1)
	go func() { werr <- lp.WriteMsg(c, marshal(t.id, t.pbKey)) }()
	msg, err := lp.ReadMsg(c, maxExchange)
	if err != nil {
		c.Close()
		<-werr
		return nil, fmt.Errorf("plaintext: reading exchange: %w", err)
	}
	if err := <-werr; err != nil {
		return nil, fmt.Errorf("plaintext: writing exchange: %w", err)
	}
	ex, err := Unmarshal(msg)
	if err != nil {
		return nil, err
	}
	if remote != "" && ex.ID != remote {
		return nil, fmt.Errorf("plaintext: %w", &network.PeerIDMismatchError{Expected: remote, Actual: ex.ID})
	}
	return &conn{Conn: c, local: t.id, remote: ex.ID, key: ex.PubKey}, nil
}

type conn struct {
	net.Conn
	local, remote peer.ID
	key           crypto.PubKey
}

func (c *conn) LocalPeer() peer.ID             { return c.local }
func (c *conn) RemotePeer() peer.ID            { return c.remote }
func (c *conn) RemotePublicKey() crypto.PubKey { return c.key }
func (c *conn) ConnState() network.ConnState   { return network.ConnState{Security: ID} }

// CloseWrite half-closes when the underlying conn can.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}
