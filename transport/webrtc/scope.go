package webrtc

import (
	"sync"

	"github.com/tachyon-p2p/tachyon/core/network"
)

// connScope is a connection's network.ConnScope as its streams use it:
// without a resource manager every call is free and succeeds. Once the
// connection closed it, further calls do nothing, so a Read after Close
// never releases memory into a closed scope.
type connScope struct {
	mu     sync.RWMutex
	s      network.ConnScope // nil: no manager, or not yet / no longer open
	closed bool
}

// set installs the scope OpenConn returned.
func (cs *connScope) set(s network.ConnScope) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed {
		s.Close()
		return
	}
	cs.s = s
}

func (cs *connScope) openStream(dir network.Direction) (done func(), err error) {
	cs.mu.RLock()
	defer cs.mu.RUnlock()
	if cs.s == nil {
		return func() {}, nil
	}
	return cs.s.OpenStream(dir)
}

func (cs *connScope) reserve(n int) error {
	cs.mu.RLock()
	defer cs.mu.RUnlock()
	if cs.s == nil {
		return nil
	}
	return cs.s.ReserveMemory(n)
}

func (cs *connScope) release(n int) {
	if n <= 0 {
		return
	}
	cs.mu.RLock()
	defer cs.mu.RUnlock()
	if cs.s != nil {
		cs.s.ReleaseMemory(n)
	}
}

// close closes the scope once.
func (cs *connScope) close() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed {
		return
	}
	cs.closed = true
	if cs.s != nil {
		cs.s.Close()
		cs.s = nil
	}
}
