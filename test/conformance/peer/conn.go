package peer

import "net"

// PacedConn returns c with its writes paced by m (see Paced).
func PacedConn(c net.Conn, m Mode) net.Conn {
	if m != Split {
		return c
	}
	return &splitConn{Conn: c}
}

type splitConn struct{ net.Conn }

func (c *splitConn) Write(p []byte) (int, error) { return splitWriter{c.Conn}.Write(p) }

// CloseWrite passes a half-close through when the wrapped conn has one.
func (c *splitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// PrefixConn returns c such that its first Write sends prefix and the
// written bytes together in one underlying Write: how a pipelining dialer
// puts its multistream header and proposal in front of its first handshake
// message.
func PrefixConn(c net.Conn, prefix []byte) net.Conn {
	return &prefixConn{Conn: c, prefix: prefix}
}

type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Write(p []byte) (int, error) {
	if c.prefix == nil {
		return c.Conn.Write(p)
	}
	buf := append(c.prefix, p...)
	c.prefix = nil
	n, err := c.Conn.Write(buf)
	n -= len(buf) - len(p)
	if n < 0 {
		n = 0
	}
	return n, err
}

// CloseWrite passes a half-close through when the wrapped conn has one.
func (c *prefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
