package main

import (
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
)

type identifiedEvent struct {
	Event string `json:"event"`
	Peer  string `json:"peer"`
	identifyInfo
}

type closedEvent struct {
	Event string `json:"event"`
}

func cmdListen(args []string) int {
	var c stackConfig
	var listen multiFlag
	fs := newFlagSet("listen", &c)
	fs.Var(&listen, "listen", "multiaddr to listen on, repeatable (default: the transport's loopback address, port 0)")
	debugAddr := fs.String("debug-addr", "", "HOST:PORT to serve GET /debug/stats on (goroutines, live heap, conns, peerstore size; JSON)")
	if _, err := parseArgs(fs, args, 0); err != nil {
		return fail(err)
	}
	if err := checkStack(&c); err != nil {
		return fail(err)
	}
	c.Listen = listen
	if len(c.Listen) == 0 {
		c.Listen = []string{transports[c.Transport].defaultListen}
	}

	// Catch signals before anything is printed, so that a harness that
	// signals right after READY never kills us with the default action.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	h, err := newHost(&c)
	if err != nil {
		return fail(fmt.Errorf("start host: %w", err))
	}
	sub, err := h.EventBus().Subscribe(
		[]any{new(event.EvtPeerIdentificationCompleted), new(event.EvtPeerIdentificationFailed)},
		eventbus.BufSize(256))
	if err != nil {
		_ = h.Close()
		return fail(fmt.Errorf("subscribe: %w", err))
	}

	addrs, err := h.Network().InterfaceListenAddresses()
	if err != nil {
		_ = h.Close()
		return fail(fmt.Errorf("listen addresses: %w", err))
	}
	if len(addrs) == 0 {
		_ = h.Close()
		return fail(fmt.Errorf("no listen addresses"))
	}
	if *debugAddr != "" {
		dl, err := serveDebug(*debugAddr, h)
		if err != nil {
			_ = h.Close()
			return fail(err)
		}
		defer dl.Close()
	}
	for _, a := range addrs {
		printLine(fmt.Sprintf("%s/p2p/%s", a, h.ID()))
	}
	printLine("READY")
	log.Printf("listening as %s (%s/%s/%s)", h.ID(), c.Transport, c.Security, c.Muxer)

	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range sub.Out() {
			switch e := ev.(type) {
			case event.EvtPeerIdentificationCompleted:
				emit(identifiedEvent{Event: "identified", Peer: e.Peer.String(), identifyInfo: identifyFromEvent(e)})
			case event.EvtPeerIdentificationFailed:
				log.Printf("identify of %s failed: %v", e.Peer, e.Reason)
			}
		}
	}()

	s := <-sigs
	log.Printf("got %v, shutting down", s)
	closeHost(h)
	_ = sub.Close()
	<-done
	emit(closedEvent{Event: "closed"})
	return exitOK
}

// closeHost closes h, but gives up waiting after a few seconds so that a
// stuck connection cannot keep the process alive.
func closeHost(h host.Host) {
	ch := make(chan error, 1)
	go func() { ch <- h.Close() }()
	select {
	case err := <-ch:
		if err != nil {
			log.Printf("close host: %v", err)
		}
	case <-time.After(5 * time.Second):
		log.Printf("close host: timed out")
	}
}
