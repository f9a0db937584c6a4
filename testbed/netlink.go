package testbed

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// A minimal netlink client: CheckSealed asks every namespace about its
// links, routes and namespace ids, which would take hundreds of `ip`
// processes, and flushing conntrack needs no conntrack tool this way.

// Not in x/sys/unix.
const (
	ipctnlMsgCtDelete = 2  // IPCTNL_MSG_CT_DELETE
	rtaNHID           = 30 // RTA_NH_ID: route through a nexthop object
)

type nlSock struct {
	fd  int
	seq uint32
	buf []byte
}

// openNetlink opens a netlink socket in the calling thread's namespace; the
// socket stays in that namespace.
func openNetlink(proto int) (*nlSock, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, fmt.Errorf("opening netlink socket: %w", err)
	}
	// Every wait for the kernel is bounded.
	tv := unix.Timeval{Sec: 5}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("setting netlink timeout: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("binding netlink socket: %w", err)
	}
	return &nlSock{fd: fd, buf: make([]byte, 64<<10)}, nil
}

func (s *nlSock) close() { unix.Close(s.fd) }

type nlMsg struct {
	typ  uint16
	data []byte // after the netlink header
}

// request sends one message and calls fn for each reply until the dump
// ends (NLM_F_DUMP), the ack arrives (NLM_F_ACK) or, otherwise, after the
// first reply. A kernel error is returned as its errno.
func (s *nlSock) request(typ, flags uint16, body []byte, fn func(nlMsg) error) error {
	s.seq++
	msg := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(body))
	msg = append(msg, body...)
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint16(msg[6:], flags|unix.NLM_F_REQUEST)
	binary.NativeEndian.PutUint32(msg[8:], s.seq)
	if err := unix.Sendto(s.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("sending netlink request %d: %w", typ, err)
	}
	for {
		// A dump comes in messages of at most 32 KiB (or a page).
		k, _, err := unix.Recvfrom(s.fd, s.buf, 0)
		if err != nil {
			return fmt.Errorf("reading netlink reply to %d: %w", typ, err)
		}
		b := s.buf[:k]
		for len(b) >= unix.NLMSG_HDRLEN {
			l := int(binary.NativeEndian.Uint32(b[0:]))
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				return fmt.Errorf("netlink reply to %d: bad length %d", typ, l)
			}
			mtyp := binary.NativeEndian.Uint16(b[4:])
			seq := binary.NativeEndian.Uint32(b[8:])
			data := b[unix.NLMSG_HDRLEN:l]
			b = b[min(nlAlign(l), len(b)):]
			if seq != s.seq {
				continue
			}
			switch mtyp {
			case unix.NLMSG_DONE:
				return nil
			case unix.NLMSG_ERROR:
				if len(data) < 4 {
					return fmt.Errorf("netlink reply to %d: short error", typ)
				}
				if errno := int32(binary.NativeEndian.Uint32(data)); errno != 0 {
					return os.NewSyscallError(fmt.Sprintf("netlink request %d", typ), unix.Errno(-errno))
				}
				return nil // the ack
			}
			if err := fn(nlMsg{mtyp, data}); err != nil {
				return err
			}
			if flags&(unix.NLM_F_DUMP|unix.NLM_F_ACK) == 0 {
				return nil
			}
		}
	}
}

func nlAlign(n int) int { return (n + 3) &^ 3 }

// nlAttrs parses route attributes (type without the nested and byte-order
// flags) into a map; later duplicates win, which is fine for what we read.
func nlAttrs(b []byte) (map[uint16][]byte, error) {
	out := map[uint16][]byte{}
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b[0:]))
		if l < 4 || l > len(b) {
			return nil, errors.New("bad netlink attribute length")
		}
		out[binary.NativeEndian.Uint16(b[2:])&0x3fff] = b[4:l]
		b = b[min(nlAlign(l), len(b)):]
	}
	return out, nil
}

// flushConntrack deletes every conntrack entry (all families) of the
// calling thread's namespace, as `conntrack -F` does.
func flushConntrack() error {
	s, err := openNetlink(unix.NETLINK_NETFILTER)
	if err != nil {
		return err
	}
	defer s.close()
	// nfgenmsg: family AF_UNSPEC and version 0 mean every family.
	body := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0}
	if err := s.request(unix.NFNL_SUBSYS_CTNETLINK<<8|ipctnlMsgCtDelete, unix.NLM_F_ACK, body, func(nlMsg) error { return nil }); err != nil {
		return fmt.Errorf("flushing conntrack: %w", err)
	}
	return nil
}
