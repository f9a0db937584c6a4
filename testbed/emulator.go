package testbed

// The emulator of one link direction is a pipe: a reader goroutine takes
// batches of frames from the ingress AF_PACKET socket (recvmmsg), decides
// each frame's fate (black hole, loss, tail drop) and its release time
//
//	departure = max(now, previous departure) + size/rate   (rate limit)
//	release   = departure + delay ± jitter, never before the previous release
//
// and appends it to a FIFO. Release times are monotonic, so a FIFO is all
// the timing wheel needed: the writer goroutine sleeps until the head is
// due, then sends every due frame in one sendmmsg. The coarse part of the
// sleep is a Go timer; the last ~2 ms are a nanosleep, because Go timers
// round to milliseconds and would add about a millisecond per direction.

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	batch     = 64
	maxQueued = 1 << 17 // frames held per direction, ~200 MB at 1500 bytes
	early     = 20 * time.Microsecond
	burst     = 150 * time.Microsecond
	// maxWakeLate bounds the wake-up compensation, so a stall (a loaded
	// machine) cannot make the emulator send frames far too early.
	maxWakeLate = int64(500 * time.Microsecond)
)

var epoch = time.Now()

func mono() int64 { return int64(time.Since(epoch)) }

// rawSock is an AF_PACKET socket bound to one interface, registered with
// the Go poller so blocked reads end when it is closed.
type rawSock struct {
	f  *os.File
	rc syscall.RawConn
}

// openRaw opens a socket on ifname; call it inside the interface's namespace.
func openRaw(ifname string) (*rawSock, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("finding %s: %w", ifname, err)
	}
	// Protocol 0 until bound, so no frame of another interface slips in.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening packet socket: %w", err)
	}
	err = func() error {
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			return fmt.Errorf("binding to %s: %w", ifname, err)
		}
		// Our own sends must not come back to us as "outgoing" frames.
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
			return fmt.Errorf("setting PACKET_IGNORE_OUTGOING: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return fmt.Errorf("setting PACKET_QDISC_BYPASS: %w", err)
		}
		// Frames for the far side's MAC address must be accepted too.
		mreq := unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
			return fmt.Errorf("setting promiscuous mode: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20); err != nil {
			return fmt.Errorf("setting receive buffer: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 16<<20); err != nil {
			return fmt.Errorf("setting send buffer: %w", err)
		}
		return nil
	}()
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), ifname)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("registering packet socket: %w", err)
	}
	return &rawSock{f: f, rc: rc}, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (s *rawSock) close() { s.f.Close() }

// mmsg runs recvmmsg or sendmmsg, waiting in the poller while it would block.
func (s *rawSock) mmsg(trap uintptr, msgs []unix.Mmsghdr) (int, error) {
	var n int
	var errno syscall.Errno
	op := func(fd uintptr) bool {
		r, _, e := unix.Syscall6(trap, fd, uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EAGAIN || e == unix.EINTR {
			return false
		}
		n, errno = int(r), e
		return true
	}
	var err error
	if trap == unix.SYS_RECVMMSG {
		err = s.rc.Read(op)
	} else {
		err = s.rc.Write(op)
	}
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	return n, nil
}

type frame struct {
	buf     []byte
	n       int
	release int64
}

// pipe emulates one direction of a link.
type pipe struct {
	link    *Link
	in, out *rawSock
	slot    int
	wake    chan struct{} // writer waits here while the queue is empty

	mu   sync.Mutex
	q    []frame // ring of maxQueued
	head int
	n    int
	idle bool
	free [][]byte

	// Owned by the reader.
	busyUntil, lastRelease int64
	rng                    *rand.Rand

	frames, bytes, lost, blackholed, queueDrops, overflow atomic.Uint64
	lateSum, lateN, lateMax                               atomic.Int64
}

func newPipe(l *Link, in, out *rawSock, slot int) *pipe {
	return &pipe{
		link: l, in: in, out: out, slot: slot,
		wake: make(chan struct{}, 1),
		q:    make([]frame, maxQueued),
		rng:  rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
}

func (p *pipe) stats() DirStats {
	s := DirStats{
		Frames: p.frames.Load(), Bytes: p.bytes.Load(), Lost: p.lost.Load(),
		Blackholed: p.blackholed.Load(), QueueDrops: p.queueDrops.Load(), Overflow: p.overflow.Load(),
		MaxLate: time.Duration(p.lateMax.Load()),
	}
	if n := p.lateN.Load(); n > 0 {
		s.MeanLate = time.Duration(p.lateSum.Load() / n)
	}
	return s
}

func (p *pipe) readLoop(stop <-chan struct{}) {
	msgs := make([]unix.Mmsghdr, batch)
	iovs := make([]unix.Iovec, batch)
	bufs := make([][]byte, batch)
	for {
		p.mu.Lock()
		for i := range bufs {
			if bufs[i] != nil {
				continue
			}
			if k := len(p.free); k > 0 {
				bufs[i], p.free = p.free[k-1], p.free[:k-1]
			} else {
				bufs[i] = make([]byte, p.slot)
			}
		}
		p.mu.Unlock()
		for i := range msgs {
			iovs[i].Base = &bufs[i][0]
			iovs[i].SetLen(p.slot)
			msgs[i] = unix.Mmsghdr{}
			msgs[i].Hdr.Iov = &iovs[i]
			msgs[i].Hdr.Iovlen = 1
		}
		n, err := p.in.mmsg(unix.SYS_RECVMMSG, msgs)
		if err != nil {
			select {
			case <-stop: // the socket was closed
				return
			case <-time.After(time.Millisecond): // do not spin on an error
			}
			continue
		}
		now := mono()
		cfg := p.link.cfg.Load()
		p.mu.Lock()
		for i := 0; i < n; i++ {
			size := int(msgs[i].Len)
			rel, ok := p.schedule(cfg, bufs[i][:size], msgs[i].Hdr.Flags, now)
			if !ok {
				continue // bufs[i] is reused
			}
			if p.n == len(p.q) {
				p.overflow.Add(1)
				continue
			}
			p.q[(p.head+p.n)%len(p.q)] = frame{buf: bufs[i], n: size, release: rel}
			p.n++
			bufs[i] = nil
		}
		wake := p.idle && p.n > 0
		if wake {
			p.idle = false
		}
		p.mu.Unlock()
		if wake {
			select {
			case p.wake <- struct{}{}:
			default:
			}
		}
	}
}

// schedule decides whether a frame passes and when it is released.
func (p *pipe) schedule(cfg *LinkConfig, f []byte, flags int32, now int64) (int64, bool) {
	if flags&unix.MSG_TRUNC != 0 {
		p.overflow.Add(1)
		return 0, false
	}
	if cfg.Blackhole.any() && cfg.Blackhole.drops(f) {
		p.blackholed.Add(1)
		return 0, false
	}
	if cfg.Loss > 0 && p.rng.Float64() < cfg.Loss {
		p.lost.Add(1)
		return 0, false
	}
	dep := now
	if cfg.Rate > 0 {
		start := max(now, p.busyUntil)
		limit := int64(cfg.queueLen()) * int64(cfg.mtu()+14) * 8e9 / cfg.Rate
		if start-now > limit {
			p.queueDrops.Add(1)
			return 0, false
		}
		p.busyUntil = start + int64(len(f))*8e9/cfg.Rate
		dep = p.busyUntil
	}
	rel := dep + int64(cfg.Delay)
	if j := int64(cfg.Jitter); j > 0 {
		rel = max(dep, rel+p.rng.Int64N(2*j+1)-j)
	}
	rel = max(rel, p.lastRelease)
	p.lastRelease = rel
	return rel, true
}

func (p *pipe) writeLoop(stop <-chan struct{}) {
	msgs := make([]unix.Mmsghdr, batch)
	iovs := make([]unix.Iovec, batch)
	out := make([]frame, 0, batch)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var wakeLate int64 // ns, moving average
	for {
		select {
		case <-stop:
			return
		default:
		}
		p.mu.Lock()
		if p.n == 0 {
			p.idle = true
			p.mu.Unlock()
			select {
			case <-p.wake:
			case <-stop:
				return
			}
			continue
		}
		now := mono()
		// Wake wakeLate early: the measured delay between a nanosleep's
		// end and this goroutine running again.
		target := p.q[p.head].release - wakeLate
		if wait := time.Duration(target - now); wait > early {
			p.mu.Unlock()
			if wait > 3*time.Millisecond {
				timer.Reset(wait - 2*time.Millisecond)
				select {
				case <-timer.C:
				case <-stop:
					return
				}
			} else {
				ts := unix.NsecToTimespec(int64(wait))
				_ = unix.Nanosleep(&ts, nil)
				late := mono() - target
				wakeLate += (min(max(late, 0), maxWakeLate) - wakeLate) / 8
			}
			continue
		}
		out = out[:0]
		// The head is due; frames due within burst go with it, so a
		// rate-limited stream costs one wake-up per burst, not per frame.
		for p.n > 0 && len(out) < batch && p.q[p.head].release-wakeLate <= now+int64(burst) {
			out = append(out, p.q[p.head])
			p.q[p.head] = frame{}
			p.head = (p.head + 1) % len(p.q)
			p.n--
		}
		p.mu.Unlock()
		p.send(out, msgs, iovs)
		p.mu.Lock()
		for _, f := range out {
			p.free = append(p.free, f.buf)
		}
		p.mu.Unlock()
	}
}

func (p *pipe) send(out []frame, msgs []unix.Mmsghdr, iovs []unix.Iovec) {
	for i, f := range out {
		iovs[i].Base = &f.buf[0]
		iovs[i].SetLen(f.n)
		msgs[i] = unix.Mmsghdr{}
		msgs[i].Hdr.Iov = &iovs[i]
		msgs[i].Hdr.Iovlen = 1
	}
	for sent := 0; sent < len(out); {
		n, err := p.out.mmsg(unix.SYS_SENDMMSG, msgs[sent:len(out)])
		if err != nil {
			if p.link.stopped() {
				return
			}
			// One frame the kernel refuses must not stall the rest.
			p.overflow.Add(1)
			n = 1
		}
		sent += n
	}
	now := mono()
	w := p.link.capture.Load()
	var lateSum, lateMax int64
	var bytes uint64
	for _, f := range out {
		late := max(now-f.release, 0)
		lateSum += late
		lateMax = max(lateMax, late)
		bytes += uint64(f.n)
		if w != nil {
			w.write(f.buf[:f.n])
		}
	}
	// One update per batch: atomics per frame cost too much at 80k frames/s.
	p.lateSum.Add(lateSum)
	p.lateN.Add(int64(len(out)))
	if lateMax > p.lateMax.Load() {
		p.lateMax.Store(lateMax)
	}
	p.frames.Add(uint64(len(out)))
	p.bytes.Add(bytes)
}

// procs raises GOMAXPROCS while emulators run: their goroutines spend most
// of their time in syscalls that do the kernel's receive work, and with as
// many Ps as cores they wait for a P behind the test's own goroutines,
// which cuts a 1 Gbit/s link to about 800 Mbit/s on two cores.
var procs struct {
	sync.Mutex
	links  int
	before int // GOMAXPROCS before the first link
	set    int // the value we set
}

const extraProcs = 6

func raiseProcs() {
	procs.Lock()
	defer procs.Unlock()
	procs.links++
	if procs.links == 1 {
		procs.before = runtime.GOMAXPROCS(0)
		procs.set = procs.before + extraProcs
		runtime.GOMAXPROCS(procs.set)
	}
}

func restoreProcs() {
	procs.Lock()
	defer procs.Unlock()
	procs.links--
	// Leave it alone if someone else changed it meanwhile.
	if procs.links == 0 && runtime.GOMAXPROCS(0) == procs.set {
		runtime.GOMAXPROCS(procs.before)
	}
}
