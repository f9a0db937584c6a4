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
	"slices"
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
	wanWarm   = flag.Int64("wan-warm", 16<<20, "internal: bytes of -wan-client's untimed warm-up upload")
	wanOnly   = flag.Bool("wan", false, "measure only the upload over the emulated 63 ms link (with -quick: small sizes)")
	wanSelect = flag.String("wan-stacks", "", "measure only these comma-separated `stacks` over the emulated link (impl/sec or an HTTP kind, e.g. tachyon/WebRTC-direct)")
)

// wanStacks are the measured stacks, as "impl/sec" or an HTTP kind.
var wanStacks = []string{
	implTachyon + "/" + secNoise, implGo + "/" + secNoise,
	implTachyon + "/" + secTLS, implGo + "/" + secTLS,
	httpH1,
	implTachyon + "/" + secQUIC, implGo + "/" + secQUIC,
	httpH3,
	implTachyon + "/" + secWebRTC, implGo + "/" + secWebRTC,
}

// selectedWANStacks is wanStacks, or those -wan-stacks names.
func selectedWANStacks() []string {
	if *wanSelect == "" {
		return wanStacks
	}
	var out []string
	for _, st := range wanStacks {
		if slices.Contains(strings.Split(*wanSelect, ","), st) {
			out = append(out, st)
		}
	}
	return out
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
		r, err := wanClientMain(*wanClient, *wanPeer, *wanSize, *wanWarm)
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
	loopbackListenRTC = "/ip4/" + ip + "/udp/0/webrtc-direct"
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

// wanClientMain connects, warms the path up with an untimed upload of warm
// bytes (slow start, ARP), then times one upload of size bytes on a new
// stream.
func wanClientMain(stack, peer string, size, warm int64) (float64, error) {
	var a wanAddr
	if err := json.Unmarshal([]byte(peer), &a); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
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

// wanSizes returns the timed and warm-up bytes of stack st in a run where
// the others move size after a 16 MiB warm-up. WebRTC-direct moves less:
// go-libp2p's keeps a fixed few tens of KiB in flight (0.3 MiB/s at 63 ms,
// whatever the size, so 1/16 of it and a 1 MiB warm-up give its steady
// rate in half a minute), tachyon's half of size after the same warm-up.
func wanSizes(st string, size int64) (timed, warm int64) {
	switch st {
	case implGo + "/" + secWebRTC:
		return size / 16, 1 << 20
	case implTachyon + "/" + secWebRTC:
		return size / 2, 16 << 20
	}
	return size, 16 << 20
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
	stacks := selectedWANStacks()
	if len(stacks) == 0 {
		return nil, fmt.Errorf("wan: -wan-stacks %q names none of %s", *wanSelect, strings.Join(wanStacks, ", "))
	}
	for _, st := range stacks {
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
		logf("wan: run %d of %d, %d MiB each (WebRTC-direct less, see wanSizes), RTT %v", rep+1, reps, size/mib, n.RTT(cliHost, srvHost))
		for _, st := range stacks {
			timed, warm := wanSizes(st, size)
			cmd := cliHost.Command(ctx, exe, "-wan-client", st, "-wan-peer", addrs[st], "-wan-size", strconv.FormatInt(timed, 10), "-wan-warm", strconv.FormatInt(warm, 10))
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
	var row strings.Builder
	wanRTCRow(res, func(f string, a ...any) { fmt.Fprintf(&row, f, a...) })
	logf("wan: %s", strings.TrimSpace(row.String()))
	return res, nil
}

// wanRTCRow writes WebRTC-direct's row of the WAN table, which has no HTTP
// baseline of its kind. The wan map's slices are sorted in place.
func wanRTCRow(wan map[string][]float64, w func(string, ...any)) {
	t, g := median(wan[implTachyon+"/"+secWebRTC]), median(wan[implGo+"/"+secWebRTC])
	w("| %s | %.1f | %.1f | %s | none | n/a |\n", secWebRTC, t, g, ratio(t, g))
}
