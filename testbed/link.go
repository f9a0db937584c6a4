package testbed

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// LinkConfig describes one link. Delay, jitter, loss and the rate apply to
// each direction separately. The zero value is a plain veth pair without
// emulator (fastest, but it cannot be changed or captured later).
type LinkConfig struct {
	// Delay is the one-way delay.
	Delay time.Duration
	// Jitter adds a uniform random [-Jitter, +Jitter] to each frame's delay.
	// Frames are never reordered: a frame is held at least until the one
	// before it left.
	Jitter time.Duration
	// Loss is the probability (0..1) that a frame is dropped.
	Loss float64
	// Rate limits the link to this many bits per second of Ethernet
	// frames (header included); 0 means unlimited.
	Rate int64
	// QueueLen is the number of full-size frames that may wait for the
	// rate limit before frames are tail-dropped; 0 means 1000.
	QueueLen int
	// MTU of the link's interfaces; 0 means 1500. It cannot be changed by
	// Update.
	MTU int
	// Blackhole drops matching traffic silently.
	Blackhole Blackhole
}

// Blackhole selects traffic a link drops silently, both ways. ARP and IPv6
// neighbour discovery always pass, so dials time out rather than fail fast.
type Blackhole struct {
	UDP   bool         // all UDP, IPv4 and IPv6
	IPv6  bool         // all IPv6
	Addrs []netip.Addr // packets from or to these addresses
}

func (b Blackhole) any() bool { return b.UDP || b.IPv6 || len(b.Addrs) > 0 }

// emulated reports whether the link needs the user-space emulator.
func (c LinkConfig) emulated() bool {
	return c.Delay != 0 || c.Jitter != 0 || c.Loss != 0 || c.Rate != 0 ||
		c.QueueLen != 0 || c.MTU != 0 || c.Blackhole.any()
}

func (c LinkConfig) mtu() int {
	if c.MTU == 0 {
		return 1500
	}
	return c.MTU
}

func (c LinkConfig) queueLen() int {
	if c.QueueLen == 0 {
		return 1000
	}
	return c.QueueLen
}

func (c LinkConfig) validate() error {
	switch {
	case c.Delay < 0 || c.Jitter < 0:
		return errors.New("testbed: negative delay or jitter")
	case c.Loss < 0 || c.Loss > 1:
		return fmt.Errorf("testbed: loss %v not in [0, 1]", c.Loss)
	case c.Rate < 0 || c.QueueLen < 0:
		return errors.New("testbed: negative rate or queue length")
	case c.MTU != 0 && (c.MTU < 1280 || c.MTU > 9000):
		return fmt.Errorf("testbed: MTU %d not in [1280, 9000]", c.MTU)
	}
	return nil
}

// Link joins a host or NAT router to its upstream router.
type Link struct {
	k               int
	ns              *netns // nil without emulator
	up4, up6        netip.Addr
	down4, down6    netip.Addr
	cfg             atomic.Pointer[LinkConfig]
	egress, ingress *pipe // egress: from the host side up
	capture         atomic.Pointer[pcapWriter]
	wg              sync.WaitGroup
	stopOnce        sync.Once
	stopCh          chan struct{}
}

// Config is the link's current configuration.
func (l *Link) Config() LinkConfig { return *l.cfg.Load() }

// Update changes delay, jitter, loss, rate, queue length and black holes of
// an emulated link while it runs. Frames already queued keep their timing.
func (l *Link) Update(cfg LinkConfig) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	if l.ns == nil {
		return errors.New("testbed: link has no emulator; create it with a non-zero LinkConfig")
	}
	if cfg.mtu() != l.Config().mtu() {
		return errors.New("testbed: the MTU of a link cannot change")
	}
	l.cfg.Store(&cfg)
	return nil
}

// LinkStats counts what the emulator did in each direction. Egress is from
// the host (or NAT router) side towards its upstream router.
type LinkStats struct {
	Egress, Ingress DirStats
}

// DirStats counts one direction of an emulated link.
type DirStats struct {
	Frames, Bytes uint64 // forwarded
	Lost          uint64 // dropped by Loss
	Blackholed    uint64 // dropped by Blackhole
	QueueDrops    uint64 // tail-dropped by a full rate queue
	Overflow      uint64 // dropped because the emulator fell behind
	// MeanLate and MaxLate say how long after its release time frames
	// were sent; this is the emulator's error on top of the delay (the
	// kernel's delivery and the receive path add a little more).
	MeanLate, MaxLate time.Duration
}

// Stats returns the link's counters; zero for a link without emulator.
func (l *Link) Stats() LinkStats {
	if l.egress == nil {
		return LinkStats{}
	}
	return LinkStats{Egress: l.egress.stats(), Ingress: l.ingress.stats()}
}

// Capture writes every frame the link forwards, both ways, to a pcap file
// at path (readable by tshark, tcpdump, wireshark) until stop is called or
// the network closes. Timestamps are the times frames leave the emulator.
func (l *Link) Capture(path string) (stop func() error, err error) {
	if l.ns == nil {
		return nil, errors.New("testbed: link has no emulator; create it with a non-zero LinkConfig")
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("testbed: creating capture file: %w", err)
	}
	w, err := newPcapWriter(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	if !l.capture.CompareAndSwap(nil, w) {
		f.Close()
		return nil, errors.New("testbed: link is already captured")
	}
	return func() error {
		l.capture.CompareAndSwap(w, nil)
		return w.close()
	}, nil
}

func (l *Link) start() error {
	l.stopCh = make(chan struct{})
	var up, down *rawSock
	err := runIn(l.ns.fd, func() (err error) {
		if up, err = openRaw("em-up"); err != nil {
			return err
		}
		if down, err = openRaw("em-down"); err != nil {
			up.close()
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("testbed: starting emulator of link %d: %w", l.k, err)
	}
	slot := l.Config().mtu() + 14 + 4 // Ethernet header, VLAN tag
	raiseProcs()
	l.egress = newPipe(l, down, up, slot)
	l.ingress = newPipe(l, up, down, slot)
	for _, p := range []*pipe{l.egress, l.ingress} {
		l.wg.Add(2)
		go func() { defer l.wg.Done(); p.readLoop(l.stopCh) }()
		go func() { defer l.wg.Done(); p.writeLoop(l.stopCh) }()
	}
	return nil
}

func (l *Link) stopped() bool {
	select {
	case <-l.stopCh:
		return true
	default:
		return false
	}
}

// stop ends the emulator's goroutines and closes its sockets and capture.
func (l *Link) stop() {
	l.stopOnce.Do(func() {
		if l.egress == nil {
			return
		}
		close(l.stopCh)
		// Closing the sockets ends the readers (sockets are shared by the
		// two directions, so close each once).
		l.egress.in.close()
		l.ingress.in.close()
		l.wg.Wait()
		restoreProcs()
		if w := l.capture.Swap(nil); w != nil {
			w.close()
		}
	})
}
