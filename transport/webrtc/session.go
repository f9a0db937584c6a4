package webrtc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	pion "github.com/pion/webrtc/v4"

	"github.com/tachyon-p2p/tachyon/core/network"
)

// tailTimeout bounds how long a signalling stream stays open once its
// connection is up, waiting for the peer to close its side (js does right
// after connecting) and ignoring candidates it trickled late.
const tailTimeout = 10 * time.Second

// session is the signalling of one /webrtc connection over stream s.
//
// The goroutine running the session (runSession) writes the offer or
// answer, then a trickle goroutine it joins writes our candidates, and a
// reader goroutine applies the peer's; runSession decides success or
// failure, after which the reader, owned by the transport, finishes the
// stream: on failure it was reset; on success it reads until the peer's
// EOF (closing the stream) and resets the stream on anything but a late
// candidate.
type session struct {
	t      *PrivateTransport
	s      network.Stream
	conn   *Conn
	pc     *pion.PeerConnection
	remote remoteSDP

	gathered chan *pion.ICECandidate // ours, to trickle; nil ends gathering
	stopTx   chan struct{}           // closed to stop the trickle
	txDone   chan struct{}           // closed when the trickle returned; nil if never started

	mu      sync.Mutex
	state   sessionState
	failure error         // the reader's or trickle's, while undecided
	failed  chan struct{} // closed when failure is set
	eof     bool          // the peer closed its side while undecided
}

type sessionState int

const (
	undecided sessionState = iota
	succeeded
	abandoned
)

func newSession(t *PrivateTransport, s network.Stream, c *Conn) *session {
	ss := &session{
		t: t, s: s, conn: c, pc: c.pc,
		gathered: make(chan *pion.ICECandidate, maxSignalCandidates+1),
		stopTx:   make(chan struct{}),
		failed:   make(chan struct{}),
	}
	c.pc.OnICECandidate(func(cand *pion.ICECandidate) {
		select {
		case ss.gathered <- cand:
		default: // more than we would send anyway
		}
	})
	return ss
}

// offer runs the offerer's side up to the answer: the init channel, the
// offer, the trickle, the answer.
func (ss *session) offer() error {
	if _, err := ss.pc.CreateDataChannel(initChannelLabel, nil); err != nil {
		return fmt.Errorf("creating the init channel: %w", err)
	}
	offer, err := ss.pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("creating offer: %w", err)
	}
	// As js: the offer goes out before SetLocalDescription starts
	// gathering, so no candidate can precede it.
	if err := writeSignal(ss.s, signalMessage{typ: sigOffer, data: offer.SDP}); err != nil {
		return fmt.Errorf("sending offer: %w", err)
	}
	if err := ss.pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("setting offer: %w", err)
	}
	ss.startTrickle()
	m, err := readSignal(ss.s)
	if err != nil {
		return fmt.Errorf("reading answer: %w", err)
	}
	if m.typ != sigAnswer {
		return fmt.Errorf("%w: got %s, want SDP_ANSWER", errBadSignal, m.typ)
	}
	if ss.remote, err = parseRemoteSDP(m.data); err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	if err := ss.pc.SetRemoteDescription(pion.SessionDescription{Type: pion.SDPTypeAnswer, SDP: m.data}); err != nil {
		return fmt.Errorf("setting answer: %w", err)
	}
	ss.startReader()
	return nil
}

// answer runs the answerer's side: the offer, the answer, the trickle.
func (ss *session) answer() error {
	m, err := readSignal(ss.s)
	if err != nil {
		return fmt.Errorf("reading offer: %w", err)
	}
	if m.typ != sigOffer {
		return fmt.Errorf("%w: got %s, want SDP_OFFER", errBadSignal, m.typ)
	}
	if ss.remote, err = parseRemoteSDP(m.data); err != nil {
		return fmt.Errorf("offer: %w", err)
	}
	if err := ss.pc.SetRemoteDescription(pion.SessionDescription{Type: pion.SDPTypeOffer, SDP: m.data}); err != nil {
		return fmt.Errorf("setting offer: %w", err)
	}
	ss.startReader()
	answer, err := ss.pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("creating answer: %w", err)
	}
	if err := writeSignal(ss.s, signalMessage{typ: sigAnswer, data: answer.SDP}); err != nil {
		return fmt.Errorf("sending answer: %w", err)
	}
	if err := ss.pc.SetLocalDescription(answer); err != nil {
		return fmt.Errorf("setting answer: %w", err)
	}
	ss.startTrickle()
	return nil
}

// waitConnected waits for ICE and DTLS.
func (ss *session) waitConnected(ctx context.Context) error {
	select {
	case <-ss.conn.connected:
		return nil
	case <-ss.conn.failed:
		return errors.New("ICE or DTLS failed")
	case <-ss.failed:
		ss.mu.Lock()
		failure := ss.failure
		ss.mu.Unlock()
		if !errors.Is(failure, network.ErrReset) {
			return failure
		}
		// The peer reset the signalling stream after the offer and answer
		// were through: it may have seen the connection come up a moment
		// before us (and a relay or the peer may drop the stream at once).
		// ICE decides, within resetGrace.
		t := time.NewTimer(resetGrace)
		defer t.Stop()
		select {
		case <-ss.conn.connected:
			return nil
		case <-ss.conn.failed:
			return fmt.Errorf("ICE or DTLS failed after %w", failure)
		case <-t.C:
			return failure
		case <-ctx.Done():
			return fmt.Errorf("waiting for ICE and DTLS: %w", ctx.Err())
		}
	case <-ctx.Done():
		return fmt.Errorf("waiting for ICE and DTLS: %w", ctx.Err())
	}
}

// resetGrace is how long a session whose signalling stream the peer reset
// still waits for ICE and DTLS.
const resetGrace = 3 * time.Second

// checkFingerprint checks the certificate the peer used in DTLS against
// the fingerprint of its SDP. pion did already (fingerprint verification
// is on): this keeps the transport's one security check visible and
// independent of a setting.
func (ss *session) checkFingerprint() error {
	fp, err := remoteCertFingerprint(ss.pc)
	if err != nil {
		return err
	}
	if string(fp) != string(ss.remote.fingerprint) {
		return errors.New("the DTLS certificate does not match the SDP fingerprint")
	}
	return nil
}

// fail records the first failure of the reader or trickle while the
// session is undecided; after the decision it resets the stream.
func (ss *session) fail(err error) {
	ss.mu.Lock()
	if ss.state == undecided {
		if ss.failure == nil {
			ss.failure = err
			close(ss.failed)
		}
		ss.mu.Unlock()
		return
	}
	ss.mu.Unlock()
	_ = ss.s.Reset()
}

// decide ends the session. On failure the stream is reset. On success
// the trickle stops, our side of the stream closes and the reader reads
// the peer's rest, within tailTimeout.
func (ss *session) decide(ok bool) {
	ss.mu.Lock()
	if ss.state != undecided {
		ss.mu.Unlock()
		return
	}
	if ok {
		ss.state = succeeded
	} else {
		ss.state = abandoned
	}
	failure, eof := ss.failure, ss.eof
	ss.mu.Unlock()
	close(ss.stopTx)
	if !ok || failure != nil {
		// A failure the connection outran still ends the stream.
		_ = ss.s.Reset()
		if ss.txDone != nil {
			<-ss.txDone
		}
		return
	}
	if ss.txDone != nil {
		<-ss.txDone // the last write before CloseWrite
	}
	_ = ss.s.CloseWrite()
	if eof {
		_ = ss.s.Close()
		return
	}
	_ = ss.s.SetReadDeadline(time.Now().Add(tailTimeout))
}

// startTrickle sends our candidates as they are gathered, until the
// session is decided. js sends no end-of-candidates message, nor do we.
func (ss *session) startTrickle() {
	ss.txDone = make(chan struct{})
	go func() {
		defer close(ss.txDone)
		for {
			select {
			case c := <-ss.gathered:
				if c == nil {
					return
				}
				data, err := json.Marshal(c.ToJSON())
				if err != nil {
					ss.fail(fmt.Errorf("encoding a candidate: %w", err))
					return
				}
				if err := writeSignal(ss.s, signalMessage{typ: sigCandidate, data: string(data)}); err != nil {
					ss.fail(fmt.Errorf("sending a candidate: %w", err))
					return
				}
			case <-ss.stopTx:
				return
			}
		}
	}()
}

// startReader applies the peer's candidates; see session. It is owned by
// the transport, whose Close resets the stream under it.
func (ss *session) startReader() {
	ss.t.wg.Add(1)
	go func() {
		defer ss.t.wg.Done()
		stop := context.AfterFunc(ss.t.ctx, func() { _ = ss.s.Reset() })
		defer stop()
		ss.read()
	}()
}

func (ss *session) read() {
	n := 0
	for {
		m, err := readSignal(ss.s)
		ss.mu.Lock()
		state := ss.state
		if err != nil && errors.Is(err, io.EOF) && state == undecided {
			ss.eof = true // decide closes the stream on success
		}
		ss.mu.Unlock()
		if err != nil {
			switch {
			case errors.Is(err, io.EOF) && state == succeeded:
				_ = ss.s.Close()
			case errors.Is(err, io.EOF) && state == undecided:
				// The peer is done trickling; ICE goes on.
			default:
				ss.fail(fmt.Errorf("reading signalling: %w", err))
			}
			return
		}
		switch state {
		case abandoned:
			return
		case succeeded:
			if m.typ == sigCandidate {
				continue // trickled before the peer saw the connection up
			}
			ss.t.cfg.Log.Debug("resetting a /webrtc signalling stream: message after the connection was up",
				"peer", ss.s.Conn().RemotePeer(), "type", m.typ)
			_ = ss.s.Reset()
			return
		}
		if m.typ != sigCandidate {
			ss.fail(fmt.Errorf("%w: got %s, want ICE_CANDIDATE", errBadSignal, m.typ))
			return
		}
		if n++; n > maxSignalCandidates {
			ss.fail(fmt.Errorf("more than %d candidates", maxSignalCandidates))
			return
		}
		c, end, err := parseCandidate(m.data, ss.remote)
		if err != nil {
			ss.fail(fmt.Errorf("%w: %w", errBadSignal, err))
			return
		}
		if end {
			continue
		}
		if err := ss.pc.AddICECandidate(c); err != nil {
			ss.fail(fmt.Errorf("adding candidate %q: %w", c.Candidate, err))
			return
		}
	}
}
