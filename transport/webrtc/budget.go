package webrtc

import (
	"sync"
	"time"
)

// sendBudget bounds what all streams of a connection keep in pion's send
// queue together, at sendHighWater as for one stream: the loss that bound
// avoids (see sendHighWater) comes from the connection's total in flight,
// not one stream's.
//
// A writer over the budget waits for room: any stream's queue draining to
// sendLowWater signals it, and since streams that stay below that mark
// never signal, it also looks again every budgetPoll.
type sendBudget struct {
	buffered func() int // bytes queued on the association, in flight included

	mu   sync.Mutex
	room chan struct{} // closed and replaced when a stream's queue drained
}

// budgetPoll is how often a writer over the budget looks again without
// a signal.
const budgetPoll = time.Millisecond

func newSendBudget(buffered func() int) *sendBudget {
	return &sendBudget{buffered: buffered, room: make(chan struct{})}
}

// full reports whether the connection is over the budget. A nil budget (a
// stream outside a connection) is never full.
func (b *sendBudget) full() bool {
	return b != nil && b.buffered() > sendHighWater
}

// roomSignal returns the channel closed on the next drain signal; for a
// nil budget, which is never full, one that is never closed.
func (b *sendBudget) roomSignal() <-chan struct{} {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.room
}

// signal wakes every writer waiting for room.
func (b *sendBudget) signal() {
	if b == nil {
		return
	}
	b.mu.Lock()
	close(b.room)
	b.room = make(chan struct{})
	b.mu.Unlock()
}
