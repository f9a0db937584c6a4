package main

import (
	"io"
	"log"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// EchoProtocol is the test protocol shared with the tachyon test suite.
const EchoProtocol protocol.ID = "/tachyon-test/echo/1.0.0"

// echoHandler copies everything it reads back to the writer, streaming,
// until the remote half-closes; then it closes the stream.
func echoHandler(s network.Stream) {
	n, err := io.Copy(s, s)
	if err != nil {
		log.Printf("echo from %s: after %d bytes: %v", s.Conn().RemotePeer(), n, err)
		_ = s.Reset()
		return
	}
	if err := s.Close(); err != nil {
		log.Printf("echo from %s: close: %v", s.Conn().RemotePeer(), err)
	}
}
