package autonatv2

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/streamtest"
)

// testTimeout bounds every wait of a test.
const testTimeout = 10 * time.Second

// Addresses: public IPs (documentation ranges count as private).
var (
	clientAddr  = ma.StringCast("/ip4/1.2.3.4/tcp/4001")
	clientQUIC  = ma.StringCast("/ip4/1.2.3.4/udp/4001/quic-v1")
	otherAddr   = ma.StringCast("/ip4/5.6.7.8/tcp/4001")
	serverAddr  = ma.StringCast("/ip4/9.9.9.9/tcp/4001")
	dialerAddr  = ma.StringCast("/ip4/9.9.9.9/tcp/50000")
	observedTCP = ma.StringCast("/ip4/1.2.3.4/tcp/33333") // clientAddr's IP
)

// testNet joins a client and a server over in-memory streams. The server's
// dial-backs land on the client's HandleDialBack (or onDialBack).
type testNet struct {
	t                            *testing.T
	clientID, serverID, dialerID peer.ID
	server                       *Server
	client                       *Client
	// observed is the client's address as the server sees its requests;
	// state is their connection's state.
	observed ma.Multiaddr
	state    network.ConnState

	// The server's dialer: canDial (nil: everything), dialErr fails every
	// dial, localAddr is the client's end of a dial-back connection (nil:
	// the address dialed), onDialBack serves the client's end (nil: the
	// client's HandleDialBack).
	canDial    func(ma.Multiaddr) bool
	dialErr    error
	localAddr  func(ma.Multiaddr) ma.Multiaddr
	onDialBack func(network.Stream)
	dialDelay  time.Duration // one-way delay on dial-back streams

	events chan ServerEvent
	wg     sync.WaitGroup

	mu        sync.Mutex
	dials     []ma.Multiaddr
	dialConns []*streamtest.Stream // the server's ends of the dial-backs
}

// newTestNet must come after leakcheck.Check, so that its cleanup (which
// closes both ends and waits for their goroutines) runs first.
func newTestNet(t *testing.T, scfg ServerConfig, ccfg ClientConfig) *testNet {
	n := &testNet{
		t: t, clientID: streamtest.PeerID(t, "client"), serverID: streamtest.PeerID(t, "server"),
		dialerID: streamtest.PeerID(t, "dialer"), observed: observedTCP, events: make(chan ServerEvent, 1000),
	}
	scfg.OnEvent = func(e ServerEvent) { n.events <- e }
	n.server = NewServer(dialerHost{n}, scfg)
	n.client = NewClient(clientHost{n}, ccfg)
	t.Cleanup(func() {
		n.server.Close()
		n.client.Close()
		done := make(chan struct{})
		go func() { n.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(testTimeout):
			t.Error("handlers still running at the end of the test")
		}
	})
	return n
}

func (n *testNet) go_(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

// request opens a dial-request stream from peer `from` to the server and
// serves it; the test plays the client on the returned end.
func (n *testNet) request(from peer.ID) *streamtest.Stream {
	a, b := streamtest.Pair(streamtest.Config{
		Protocol: DialRequestID, A: from, B: n.serverID, AAddr: n.observed, BAddr: serverAddr, State: n.state,
	})
	n.go_(func() { n.server.HandleDialRequest(b) })
	return a
}

// event waits for the server's next event.
func (n *testNet) event() ServerEvent {
	n.t.Helper()
	select {
	case e := <-n.events:
		return e
	case <-time.After(testTimeout):
		n.t.Fatal("no server event")
		return ServerEvent{}
	}
}

func (n *testNet) numDials() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.dials)
}

type clientHost struct{ n *testNet }

func (h clientHost) NewStream(ctx context.Context, p peer.ID, protos ...protocol.ID) (network.Stream, error) {
	if p != h.n.serverID || len(protos) != 1 || protos[0] != DialRequestID {
		return nil, errors.New("fake: no such peer or protocol")
	}
	return h.n.request(h.n.clientID), nil
}

type dialerHost struct{ n *testNet }

func (h dialerHost) CanDial(a ma.Multiaddr) bool {
	return h.n.canDial == nil || h.n.canDial(a)
}

func (h dialerHost) DialBack(ctx context.Context, p peer.ID, addr ma.Multiaddr) (network.Stream, error) {
	n := h.n
	n.mu.Lock()
	n.dials = append(n.dials, addr)
	n.mu.Unlock()
	if n.dialErr != nil {
		return nil, n.dialErr
	}
	local := addr
	if n.localAddr != nil {
		local = n.localAddr(addr)
	}
	a, b := streamtest.Pair(streamtest.Config{Protocol: DialBackID, A: n.dialerID, B: p, AAddr: dialerAddr, BAddr: local, Delay: n.dialDelay})
	n.mu.Lock()
	n.dialConns = append(n.dialConns, a)
	n.mu.Unlock()
	handler := n.client.HandleDialBack
	if n.onDialBack != nil {
		handler = n.onDialBack
	}
	n.go_(func() { handler(b) })
	return a, nil
}

// scriptHost is a ClientHost whose server is a script run on the far end
// of each stream.
type scriptHost struct {
	t      *testing.T
	server peer.ID
	script func(*streamtest.Stream)
	wg     *sync.WaitGroup
}

func (h scriptHost) NewStream(ctx context.Context, p peer.ID, protos ...protocol.ID) (network.Stream, error) {
	a, b := streamtest.Pair(streamtest.Config{
		Protocol: DialRequestID, A: streamtest.PeerID(h.t, "client"), B: p, AAddr: observedTCP, BAddr: serverAddr,
	})
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.script(b)
	}()
	return a, nil
}

// sendDialBack plays a server's dialer: it hands nonce to c over a new
// dial-back stream whose client end is at local, and returns the answer.
func sendDialBack(t *testing.T, c *Client, nonce uint64, local ma.Multiaddr) (*DialBackResponse, error) {
	a, b := streamtest.Pair(streamtest.Config{
		Protocol: DialBackID, A: streamtest.PeerID(t, "dialer"), B: streamtest.PeerID(t, "client"), AAddr: dialerAddr, BAddr: local,
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.HandleDialBack(b)
	}()
	defer func() {
		select {
		case <-done:
		case <-time.After(testTimeout):
			t.Error("HandleDialBack did not return")
		}
	}()
	a.SetDeadline(time.Now().Add(testTimeout))
	if err := Write(a, &DialBack{Nonce: nonce}); err != nil {
		return nil, err
	}
	a.CloseWrite()
	return ReadDialBackResponse(a)
}

// readMsg reads a Message from st within testTimeout.
func readMsg(t *testing.T, st *streamtest.Stream) (*Message, error) {
	t.Helper()
	st.SetDeadline(time.Now().Add(testTimeout))
	return ReadMessage(st)
}

// waitReset waits for st's far end to reset the stream.
func waitReset(t *testing.T, st *streamtest.Stream) {
	t.Helper()
	st.SetDeadline(time.Now().Add(testTimeout))
	buf := make([]byte, 64)
	for {
		_, err := st.Read(buf)
		if errors.Is(err, network.ErrReset) {
			return
		}
		if err != nil {
			t.Fatalf("waiting for a reset: %v", err)
		}
	}
}
