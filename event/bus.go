package event

import (
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
)

// DefaultBufSize is the buffer of a subscription asked for with a size <= 0.
const DefaultBufSize = 16

// Bus delivers emitted events to the subscriptions that want their type.
// The zero value is not usable; use NewBus. A Bus is safe for concurrent use.
type Bus struct {
	mu      sync.RWMutex
	subs    []*sub
	closed  bool
	dropped atomic.Uint64
	tracer  Tracer
}

// Tracer is told about every delivery missed by a full subscription, with
// the name of the event's type ("EvtPeerIdentified"). It must not block.
type Tracer interface {
	Dropped(event string)
}

// NewBus returns an empty bus.
func NewBus() *Bus { return &Bus{} }

// NewTracedBus returns an empty bus that tells t (when not nil) about the
// events it drops.
func NewTracedBus(t Tracer) *Bus { return &Bus{tracer: t} }

// sub is one subscription, typed or not.
type sub struct {
	types   map[reflect.Type]bool // nil: every event
	offer   func(any) bool        // non-blocking send; false when full
	close   func()
	dropped atomic.Uint64
}

func (s *sub) wants(t reflect.Type) bool { return s.types == nil || s.types[t] }

// Emit hands evt to every subscription that wants its type, without
// blocking: a subscription whose buffer is full misses evt, which is counted
// in its Dropped and in the bus's Dropped. Emit on a closed bus does nothing.
func (b *Bus) Emit(evt any) {
	t := reflect.TypeOf(evt)
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, s := range b.subs {
		if s.wants(t) && !s.offer(evt) {
			s.dropped.Add(1)
			b.dropped.Add(1)
			if b.tracer != nil {
				b.tracer.Dropped(t.Name())
			}
		}
	}
}

// Wants reports whether a subscription wants events of evt's type, for an
// emitter whose event costs something to build (EvtPeerIdentified checks
// the peer's signed record): with nobody listening it need not be built.
func (b *Bus) Wants(evt any) bool {
	t := reflect.TypeOf(evt)
	b.mu.RLock()
	defer b.mu.RUnlock()
	return slices.ContainsFunc(b.subs, func(s *sub) bool { return s.wants(t) })
}

// Dropped is the number of deliveries missed by full subscriptions since the
// bus was made.
func (b *Bus) Dropped() uint64 { return b.dropped.Load() }

// Close closes every subscription (their channels close after the events
// already buffered); later Subscribe calls return closed subscriptions.
func (b *Bus) Close() {
	b.mu.Lock()
	subs := b.subs
	b.subs, b.closed = nil, true
	for _, s := range subs {
		s.close()
	}
	b.mu.Unlock()
}

func (b *Bus) add(s *sub) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		s.close()
		return
	}
	b.subs = append(b.subs, s)
}

func (b *Bus) remove(s *sub) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if i := slices.Index(b.subs, s); i >= 0 {
		b.subs = slices.Delete(b.subs, i, i+1)
		s.close()
	}
}

// Subscription receives events of every type it was subscribed to.
type Subscription struct {
	b  *Bus
	s  *sub
	ch chan any
}

// Subscribe returns a subscription to events of the types of the given
// values (such as EvtPeerIdentified{}), or to every event if none is given.
// Its channel buffers bufSize events (DefaultBufSize if bufSize <= 0);
// events that find it full are dropped (see Bus).
func (b *Bus) Subscribe(bufSize int, types ...any) *Subscription {
	if bufSize <= 0 {
		bufSize = DefaultBufSize
	}
	ch := make(chan any, bufSize)
	s := &sub{
		offer: func(e any) bool {
			select {
			case ch <- e:
				return true
			default:
				return false
			}
		},
		close: func() { close(ch) },
	}
	if len(types) > 0 {
		s.types = make(map[reflect.Type]bool, len(types))
		for _, t := range types {
			s.types[reflect.TypeOf(t)] = true
		}
	}
	b.add(s)
	return &Subscription{b: b, s: s, ch: ch}
}

// Out delivers the events. It is closed by Close and by the bus's Close.
func (s *Subscription) Out() <-chan any { return s.ch }

// Dropped is the number of events this subscription missed because its
// buffer was full.
func (s *Subscription) Dropped() uint64 { return s.s.dropped.Load() }

// Close ends the subscription and closes Out. It is safe to call more than
// once and concurrently with Emit.
func (s *Subscription) Close() { s.b.remove(s.s) }

// TypedSubscription receives the events of one type T.
type TypedSubscription[T any] struct {
	b  *Bus
	s  *sub
	ch chan T
}

// Subscribe returns a subscription to the events of type T on b, buffering
// bufSize of them (DefaultBufSize if bufSize <= 0); events that find it full
// are dropped (see Bus).
func Subscribe[T any](b *Bus, bufSize int) *TypedSubscription[T] {
	if bufSize <= 0 {
		bufSize = DefaultBufSize
	}
	ch := make(chan T, bufSize)
	s := &sub{
		types: map[reflect.Type]bool{reflect.TypeFor[T](): true},
		offer: func(e any) bool {
			select {
			case ch <- e.(T):
				return true
			default:
				return false
			}
		},
		close: func() { close(ch) },
	}
	b.add(s)
	return &TypedSubscription[T]{b: b, s: s, ch: ch}
}

// Out delivers the events. It is closed by Close and by the bus's Close.
func (s *TypedSubscription[T]) Out() <-chan T { return s.ch }

// Dropped is the number of events this subscription missed because its
// buffer was full.
func (s *TypedSubscription[T]) Dropped() uint64 { return s.s.dropped.Load() }

// Close ends the subscription and closes Out. It is safe to call more than
// once and concurrently with Emit.
func (s *TypedSubscription[T]) Close() { s.b.remove(s.s) }
