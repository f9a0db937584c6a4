package tachyon

import (
	"io"
	"time"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/mss"
	"github.com/tachyon-p2p/tachyon/swarm"
)

// lazyStream is a swarm stream whose protocol negotiation rides along with
// its first write (see mss.LazyConn). It embeds the stream as a
// network.Stream, not a *swarm.Stream, so that none of the swarm stream's
// other methods (WriteTo, Buffered, DeferWrite) is promoted to bypass lc.
type lazyStream struct {
	network.Stream
	lc *mss.LazyConn
}

var _ network.Stream = (*lazyStream)(nil)

func newLazyStream(s *swarm.Stream, proto protocol.ID) *lazyStream {
	s.SetProtocol(proto)
	return &lazyStream{Stream: s, lc: mss.NewLazy(s, proto)}
}

func (s *lazyStream) Read(p []byte) (int, error)        { return s.lc.Read(p) }
func (s *lazyStream) Write(p []byte) (int, error)       { return s.lc.Write(p) }
func (s *lazyStream) WriteFinal(p []byte) (int, error)  { return s.lc.WriteFinal(p) }
func (s *lazyStream) Close() error                      { return s.lc.Close() }
func (s *lazyStream) CloseWrite() error                 { return s.lc.CloseWrite() }
func (s *lazyStream) CloseRead() error                  { return s.lc.CloseRead() }
func (s *lazyStream) Reset() error                      { return s.lc.Reset() }
func (s *lazyStream) SetDeadline(t time.Time) error     { return s.lc.SetDeadline(t) }
func (s *lazyStream) SetReadDeadline(t time.Time) error { return s.lc.SetReadDeadline(t) }
func (s *lazyStream) SetWriteDeadline(t time.Time) error {
	return s.lc.SetWriteDeadline(t)
}

// WriteTo gives io.Copy from a lazy stream the swarm stream's pooled
// buffer, read through the lazy negotiation.
func (s *lazyStream) WriteTo(w io.Writer) (int64, error) { return swarm.CopyStream(w, s.lc) }
