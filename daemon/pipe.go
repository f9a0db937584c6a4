package daemon

import (
	"context"
	"fmt"
	"io"
	"net"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/internal/lp"
)

// readRequest reads and parses one varint-prefixed Request.
func readRequest(r io.Reader) (request, error) {
	msg, err := lp.ReadMsg(r, MaxRequestSize)
	if err != nil {
		return request{}, err
	}
	return parseRequest(msg)
}

func writeMsg(w io.Writer, msg []byte) error { return lp.WriteMsg(w, msg) }

// closeWrite half-closes c when it can, and closes it otherwise.
func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// pipe carries bytes between the connection c and the stream st until both
// directions have ended. An EOF in one direction half-closes the other
// side; an error in either direction resets the stream and closes c, which
// ends the other direction too. The second goroutine is owned by pipe,
// which waits for it.
func pipe(c net.Conn, st network.Stream) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := io.Copy(st, c)
		if err == nil {
			err = st.CloseWrite()
		}
		if err != nil {
			st.Reset()
			c.Close()
		}
	}()
	_, err := io.Copy(c, st)
	if err == nil {
		err = closeWrite(c)
	}
	if err != nil {
		st.Reset()
		c.Close()
	}
	<-done
	st.Close()
	c.Close()
}

// dialArgs maps a TCP or Unix multiaddr to net.Dial arguments.
func dialArgs(a ma.Multiaddr) (string, string, error) {
	network, addr, err := manet.DialArgs(a)
	if err != nil {
		return "", "", err
	}
	switch network {
	case "tcp", "tcp4", "tcp6", "unix":
		return network, addr, nil
	}
	return "", "", fmt.Errorf("unsupported network %q", network)
}

// dial connects to a TCP or Unix multiaddr. The connection keeps its
// CloseWrite, which half-closes need.
func dial(ctx context.Context, a ma.Multiaddr) (net.Conn, error) {
	network, addr, err := dialArgs(a)
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", a, err)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", a, err)
	}
	return c, nil
}
