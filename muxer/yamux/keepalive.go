package yamux

import (
	"container/heap"
	"sync"
	"time"
)

// keepalives runs every session's keepalive tick from one goroutine. A
// timer per session (time.AfterFunc) starts a goroutine at every tick, and
// the scheduler wakes a thread for each: with thousands of idle
// connections that was about 40 % of a listener's idle CPU (p2pbench
// -inbound), more than the keepalive pings themselves. Here ticks that
// fall due close together run in one wake-up.
//
// A tick runs at its time or up to tickSlack(interval) later, never
// earlier: the tick checks whether the peer was heard since the last tick,
// and a peer that pings every interval itself (go-yamux does, every 30 s)
// must land in every window, which an early tick would miss.
var keepalives = &ticker{wake: make(chan struct{}, 1)}

// tickSlack is how late a tick may run so that it shares a wake-up.
func tickSlack(interval time.Duration) time.Duration {
	return min(interval/16, time.Second)
}

// ticker holds the sessions by their next tick. Its goroutine runs while
// a session is scheduled and ends once none is. Lock order: a session's
// mu before t.mu; the goroutine takes no session lock while holding t.mu.
type ticker struct {
	mu      sync.Mutex
	due     tickHeap
	running bool
	wake    chan struct{} // the earliest tick moved earlier, or none is left
}

// epoch is the origin of the ticker's clock (monotonic).
var epoch = time.Now()

func monoNow() time.Duration { return time.Since(epoch) }

// schedule (re)arms s's tick in d.
func (t *ticker) schedule(s *Session, d time.Duration) {
	at := monoNow() + d
	t.mu.Lock()
	defer t.mu.Unlock()
	s.kaAt, s.kaLate = at, tickSlack(s.cfg.KeepAliveInterval)
	if s.kaIdx >= 0 {
		heap.Fix(&t.due, s.kaIdx)
	} else {
		heap.Push(&t.due, s)
	}
	if t.due[0] == s {
		t.signal()
	}
	if !t.running {
		t.running = true
		go t.run()
	}
}

// remove cancels s's tick. A tick already taken for running still runs;
// keepaliveTick sees the session closed.
func (t *ticker) remove(s *Session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s.kaIdx >= 0 {
		heap.Remove(&t.due, s.kaIdx)
		if len(t.due) == 0 {
			t.signal() // the goroutine can end
		}
	}
}

func (t *ticker) signal() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func (t *ticker) run() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var batch []*Session
	for {
		t.mu.Lock()
		if len(t.due) == 0 {
			t.running = false
			t.mu.Unlock()
			return
		}
		now := monoNow()
		// Sleep until the earliest tick may run no later; then run every
		// tick that is due by now.
		if first := t.due[0]; first.kaAt+first.kaLate > now {
			wait := first.kaAt + first.kaLate - now
			t.mu.Unlock()
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-t.wake:
				timer.Stop() // no stale tick is delivered after Stop (Go 1.23 timers)
			}
			continue
		}
		for len(t.due) > 0 && t.due[0].kaAt <= now {
			batch = append(batch, heap.Pop(&t.due).(*Session))
		}
		t.mu.Unlock()
		for i, s := range batch {
			s.keepaliveTick()
			batch[i] = nil
		}
		batch = batch[:0]
	}
}

// tickHeap orders sessions by the latest time their next tick may run
// (what the ticker sleeps until); Session.kaIdx is the position (-1: not
// scheduled).
type tickHeap []*Session

func (h tickHeap) Len() int           { return len(h) }
func (h tickHeap) Less(i, j int) bool { return h[i].kaAt+h[i].kaLate < h[j].kaAt+h[j].kaLate }
func (h tickHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].kaIdx, h[j].kaIdx = i, j
}
func (h *tickHeap) Push(x any) {
	s := x.(*Session)
	s.kaIdx = len(*h)
	*h = append(*h, s)
}
func (h *tickHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	s.kaIdx = -1
	return s
}
