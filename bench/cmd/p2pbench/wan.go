package main

// The single-stream upload over an emulated long fat link (issue 6): two
// testbed hosts, each on a link of half the RTT one way and the highest
// rate the emulator sustains, a server child process in one and a client
// child process in the other (both p2pbench itself, with hidden flags), so
// every socket of either implementation lives in its namespace.

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/testbed"
)

// wanLink is the link of each of the two hosts. A path between two hosts
// crosses both links, each delaying by Delay one way, so the RTT is
// 4 x Delay = 63 ms.
var wanLink = testbed.LinkConfig{Delay: 15750 * time.Microsecond, Rate: 1e9}

var (
	wanServe  = flag.String("wan-serve", "", "internal: serve `stack` (impl/sec or an HTTP kind) on -wan-ip and print its address")
	wanClient = flag.String("wan-client", "", "internal: upload to -wan-peer over `stack` and print MiB/s")
	wanIP     = flag.String("wan-ip", "", "internal: listen IP of -wan-serve")
	wanPeer   = flag.String("wan-peer", "", "internal: JSON address printed by -wan-serve")
	wanSize   = flag.Int64("wan-size", 0, "internal: bytes per upload of -wan-client")
	wanOnly   = flag.Bool("wan", false, "measure only the upload over the emulated 63 ms link (with -quick: small sizes)")
)

// wanStacks are the measured stacks, as "impl/sec" or an HTTP kind.
var wanStacks = []string{
	implTachyon + "/" + secNoise, implGo + "/" + secNoise,
	implTachyon + "/" + secTLS, implGo + "/" + secTLS,
	httpH1,
	implTachyon + "/" + secQUIC, implGo + "/" + secQUIC,
	httpH3,
}

// wanAddr is what -wan-serve prints.
type wanAddr struct {
	ID    string   `json:"id,omitempty"`
	Addrs []string `json:"addrs,omitempty"`
	URL   string   `json:"url,omitempty"`
}

func isHTTP(stack string) bool { return stack == httpH1 || stack == httpH2 || stack == httpH3 }

// wanChild runs the hidden subcommands; ok is false if none was asked for.
func wanChild() (code int, ok bool) {
	switch {
	case *wanServe != "":
		if err := wanServeMain(*wanServe, *wanIP); err != nil {
			fmt.Fprintln(os.Stderr, "p2pbench -wan-serve:", err)
			return 1, true
		}
		return 0, true
	case *wanClient != "":
		r, err := wanClientMain(*wanClient, *wanPeer, *wanSize)
		if err != nil {
			fmt.Fprintln(os.Stderr, "p2pbench -wan-client:", err)
			return 1, true
		}
		fmt.Printf("RATE %f\n", r)
		return 0, true
	}
	return 0, false
}

func wanServeMain(stack, ip string) error {
	listenIP = ip
	loopbackListen = "/ip4/" + ip + "/tcp/0"
	loopbackListenQUIC = "/ip4/" + ip + "/udp/0/quic-v1"
	var a wanAddr
	if isHTTP(stack) {
		s, err := newHTTPServer(stack)
		if err != nil {
			return err
		}
		a.URL = s.url
	} else {
		impl, sec, _ := strings.Cut(stack, "/")
		h, err := newHost(impl, sec, true)
		if err != nil {
			return err
		}
		if err := serve(h); err != nil {
			return err
		}
		r := h.ref()
		a.ID = r.id
		for _, m := range r.addrs {
			a.Addrs = append(a.Addrs, m.String())
		}
	}
	b, _ := json.Marshal(a)
	fmt.Printf("%s\n", b)
	select {} // until the parent kills us
}

// wanClientMain connects, warms the path up with an untimed upload (slow
// start, ARP), then times one upload of size bytes on a new stream.
func wanClientMain(stack, peer string, size int64) (float64, error) {
	var a wanAddr
	if err := json.Unmarshal([]byte(peer), &a); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const warm = 16 << 20
	if isHTTP(stack) {
		u, err := (&httpServer{kind: stack, url: a.URL}).uploader(ctx)
		if err != nil {
			return 0, err
		}
		defer u.done()
		if _, err := u.post(ctx, warm); err != nil {
			return 0, err
		}
		return u.post(ctx, size)
	}
	impl, sec, _ := strings.Cut(stack, "/")
	ref := peerRef{id: a.ID}
	for _, s := range a.Addrs {
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			return 0, err
		}
		ref.addrs = append(ref.addrs, m)
	}
	c, err := newHost(impl, sec, false)
	if err != nil {
		return 0, err
	}
	defer c.close()
	if err := c.connect(ctx, ref); err != nil {
		return 0, fmt.Errorf("connect: %w", err)
	}
	if _, err := uploadOnce(ctx, c, ref, warm); err != nil {
		return 0, fmt.Errorf("warm-up: %w", err)
	}
	return uploadOnce(ctx, c, ref, size)
}

// wanResult is the WAN upload of one stack.
type wanResult struct {
	rates []float64 // MiB/s per run
}

// runWAN measures every wanStack reps times, in turns, over two emulated
// links; it returns nil results (and logs why) if the testbed is not
// available, e.g. without root.
func runWAN(ctx context.Context, size int64, reps int) (map[string][]float64, error) {
	n, err := testbed.New()
	if err != nil {
		logf("wan: skipped, no testbed: %v", err)
		return nil, nil
	}
	defer n.Close()
	srvHost, err := n.AddHost("srv", wanLink)
	if err != nil {
		return nil, fmt.Errorf("wan: %w", err)
	}
	cliHost, err := n.AddHost("cli", wanLink)
	if err != nil {
		return nil, fmt.Errorf("wan: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("wan: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	var servers []*exec.Cmd
	defer func() {
		// The servers run until killed: cancel first, then reap them.
		cancel()
		for _, c := range servers {
			c.Wait()
		}
	}()
	addrs := make(map[string]string)
	for _, st := range wanStacks {
		cmd := srvHost.Command(ctx, exe, "-wan-serve", st, "-wan-ip", srvHost.IPv4().String())
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, fmt.Errorf("wan: %w", err)
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("wan: server %s: %w", st, err)
		}
		servers = append(servers, cmd)
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("wan: server %s: %w", st, err)
		}
		addrs[st] = strings.TrimSpace(line)
	}
	res := make(map[string][]float64)
	for rep := range reps {
		logf("wan: run %d of %d, %d MiB each, RTT %v", rep+1, reps, size/mib, n.RTT(cliHost, srvHost))
		for _, st := range wanStacks {
			cmd := cliHost.Command(ctx, exe, "-wan-client", st, "-wan-peer", addrs[st], "-wan-size", strconv.FormatInt(size, 10))
			cmd.Stderr = os.Stderr
			out, err := cmd.Output()
			if err != nil {
				return nil, fmt.Errorf("wan: client %s: %w", st, err)
			}
			f := strings.Fields(string(out))
			if len(f) < 2 || f[len(f)-2] != "RATE" {
				return nil, fmt.Errorf("wan: client %s: output %q", st, out)
			}
			r, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				return nil, fmt.Errorf("wan: client %s: %w", st, err)
			}
			res[st] = append(res[st], r)
		}
	}
	return res, nil
}
