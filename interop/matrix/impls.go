package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// oldTachyon is the pinned old commit of main that tachyon must stay
// compatible with: the first commit with the library's options API
// (tachyon.New, Transports, Security, Connect, Ping), so the contract driver
// of today (cmd/tachyon/interop.go) builds against it unchanged.
const oldTachyon = "19a54183842b19940a3d3548eb3ed942a4cb58af"

// goVersions are the go-libp2p versions of the matrix, newest first.
var goVersions = []string{"v0.51.0", "v0.48.0", "v0.45.0", "v0.42.0", "v0.39.0", "v0.36.0", "v0.33.0", "v0.30.0"}

// sets name the implementations each run has.
var sets = map[string][]string{
	"slice": {"tachyon", "tachyon-old", "go-v0.51.0", "go-v0.45.0", "go-v0.36.0", "js-3"},
	"full": {"tachyon", "tachyon-old", "go-v0.51.0", "go-v0.48.0", "go-v0.45.0", "go-v0.42.0", "go-v0.39.0",
		"go-v0.36.0", "go-v0.33.0", "go-v0.30.0", "js-3", "js-2", "chromium-js-3"},
}

// variants are the transport x security x muxer combinations, in table
// order. The contract leaves security and muxer empty for transports that
// bring their own.
var variants = []variant{
	{"tcp", "noise", "yamux"}, {"tcp", "tls", "yamux"},
	{"ws", "noise", "yamux"}, {"ws", "tls", "yamux"},
	{"quic-v1", "", ""}, {"webtransport", "", ""}, {"webrtc-direct", "", ""},
}

type variant struct{ Transport, Security, Muxer string }

func (v variant) String() string {
	if v.Security == "" {
		return v.Transport
	}
	return v.Transport + "/" + v.Security + "/" + v.Muxer
}

// impl is one implementation (and version) of the contract.
type impl struct {
	Name    string
	Version string
	// lacks says why the implementation cannot take part in a variant or
	// role: keys are transports, securities, and "listen".
	lacks map[string]string
	argv  []string // the peer process; env is the contract's
	dir   string
	env   []string                        // extra environment
	build func(ctx context.Context) error // makes argv[0] ready
}

// why returns the reason impl cannot run v as dialer (or listener), or "".
func (im *impl) why(v variant, dialer bool) string {
	if r := im.lacks[v.Transport]; r != "" {
		return r
	}
	if r := im.lacks[v.Security]; v.Security != "" && r != "" {
		return r
	}
	if !dialer {
		return im.lacks["listen"]
	}
	return ""
}

// env is where the runner finds things.
type env struct {
	repo  string // the tachyon checkout
	cache string // generated modules and binaries
	log   func(format string, args ...any)
}

func (e *env) impl(name string) (*impl, error) {
	bin := filepath.Join(e.cache, "bin")
	switch {
	case name == "tachyon":
		out := filepath.Join(bin, "tachyon-head")
		return &impl{Name: name, Version: "HEAD (working tree)", argv: []string{out, "transport-interop"},
			build: func(ctx context.Context) error {
				return e.run(ctx, e.repo, nil, "go", "build", "-o", out, "./cmd/tachyon")
			}}, nil
	case name == "tachyon-old":
		out := filepath.Join(bin, "tachyon-"+oldTachyon[:7])
		return &impl{Name: name, Version: oldTachyon[:7], argv: []string{out},
			build: func(ctx context.Context) error { return e.buildOldTachyon(ctx, out) }}, nil
	case strings.HasPrefix(name, "go-"):
		v := strings.TrimPrefix(name, "go-")
		out := filepath.Join(bin, "gopeer-"+v)
		im := &impl{Name: name, Version: "go-libp2p " + v, argv: []string{out}, lacks: map[string]string{},
			build: func(ctx context.Context) error { return e.buildGoPeer(ctx, v, out) }}
		if semverLess(v, "v0.33.0") {
			im.lacks["webrtc-direct"] = "go-libp2p has WebRTC-direct from v0.33"
		}
		return im, nil
	case name == "js-3" || name == "js-2":
		dir := filepath.Join(e.repo, "interop/matrix/js", "v"+name[3:])
		im := &impl{Name: name, Version: "js-libp2p " + jsVersion(dir) + " (Node)", dir: dir,
			argv: []string{"node", "--experimental-websocket", "main.mjs"},
			lacks: map[string]string{
				"tls":          "the js peer offers Noise only (js-libp2p's test-plans entry does too)",
				"quic-v1":      "js-libp2p has no QUIC transport",
				"webtransport": "js-libp2p in Node has no WebTransport (browser API)",
			},
			build: func(ctx context.Context) error { return e.npmCI(ctx, dir) }}
		if name == "js-2" {
			im.lacks["webrtc-direct"] = "the 2.x line's @libp2p/webrtc 5.2 needs @ipshipyard/node-datachannel 0.26, whose install fetches a binary from github.com or builds it with cmake (neither possible here); " +
				"node-datachannel 0.33 in its place (package.json overrides, so that npm ci works) fails its dials (RTCSessionDescription.sdp is read-only there)"
		}
		return im, nil
	case name == "chromium-js-3":
		dir := filepath.Join(e.repo, "interop/matrix/js", "v3")
		return &impl{Name: name, Version: "js-libp2p " + jsVersion(dir) + " (Chromium)", dir: dir,
			argv: []string{"node", "browser.mjs"},
			lacks: map[string]string{
				"listen":  "browsers only dial",
				"tcp":     "browsers cannot open TCP connections",
				"tls":     "the js peer offers Noise only",
				"quic-v1": "browsers have no raw QUIC",
			},
			build: func(ctx context.Context) error { return e.buildBrowser(ctx, dir) }}, nil
	}
	return nil, fmt.Errorf("unknown implementation %q", name)
}

// run runs a build step, its output to the log on failure.
func (e *env) run(ctx context.Context, dir string, extra []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), extra...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s in %s: %w\n%s", name, strings.Join(args, " "), dir, err, tail(string(out), 2000))
	}
	return nil
}

// buildGoPeer generates the version's module from interop/matrix/gopeer
// (same .go files but webrtc.go before v0.33, a go.mod naming the
// version) and builds it with the
// toolchain that version needs: go1.25.0 up to v0.45 (their QUIC listeners
// panic with Go 1.26's crypto/tls: quic-go's "where's my session ticket?",
// fixed in the quic-go of v0.46), the machine's Go from v0.46.
func (e *env) buildGoPeer(ctx context.Context, v, out string) error {
	dir := filepath.Join(e.cache, "gopeer", v)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	src := filepath.Join(e.repo, "interop/matrix/gopeer")
	files, err := filepath.Glob(filepath.Join(src, "*.go"))
	if err != nil {
		return err
	}
	for _, f := range files {
		if filepath.Base(f) == "webrtc.go" && semverLess(v, "v0.33.0") {
			// Not even behind a build tag: go mod tidy reads every file and
			// would upgrade go-libp2p to find the package.
			os.Remove(filepath.Join(dir, "webrtc.go"))
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := writeIfChanged(filepath.Join(dir, filepath.Base(f)), b); err != nil {
			return err
		}
	}
	mod := fmt.Sprintf("module tachyon-matrix/gopeer\n\ngo 1.21\n\nrequire github.com/libp2p/go-libp2p %s\n", v)
	toolchain := []string{"GOTOOLCHAIN=local"}
	if semverLess(v, "v0.46.0") {
		toolchain = []string{"GOTOOLCHAIN=go1.25.0"}
	}
	// go mod tidy rewrites go.mod, so a generated one is written only once.
	if _, err := os.Stat(filepath.Join(dir, "go.sum")); err != nil {
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(mod), 0o644); err != nil {
			return err
		}
		if err := e.run(ctx, dir, toolchain, "go", "mod", "tidy"); err != nil {
			return err
		}
	}
	return e.run(ctx, dir, toolchain, "go", "build", "-o", out, ".")
}

// adapterMain is the main package the pinned old commit gets: today's
// contract driver (cmd/tachyon/interop.go, copied beside it) needs only
// these two names of cmd/tachyon (usageError as main.go has it).
const adapterMain = `package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

type usageError struct {
	error
	fs *flag.FlagSet
}

func usagef(format string, args ...any) error { return usageError{error: fmt.Errorf(format, args...)} }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cmdTransportInterop(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tachyon transport-interop:", err)
		if errors.As(err, new(usageError)) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
`

// buildOldTachyon extracts the pinned commit with git archive and builds
// the adapter against its root package.
func (e *env) buildOldTachyon(ctx context.Context, out string) error {
	src := filepath.Join(e.cache, "tachyon-"+oldTachyon[:7])
	if _, err := os.Stat(filepath.Join(src, "go.mod")); err != nil {
		if err := os.MkdirAll(src, 0o755); err != nil {
			return err
		}
		sh := fmt.Sprintf("git -C %q archive %s | tar -x -C %q", e.repo, oldTachyon, src)
		if err := e.run(ctx, src, nil, "sh", "-c", sh); err != nil {
			return fmt.Errorf("extracting tachyon %s: %w", oldTachyon[:7], err)
		}
	}
	adapter := filepath.Join(src, "cmd", "interop-adapter")
	if err := os.MkdirAll(adapter, 0o755); err != nil {
		return err
	}
	driver, err := os.ReadFile(filepath.Join(e.repo, "cmd/tachyon/interop.go"))
	if err != nil {
		return err
	}
	if err := writeIfChanged(filepath.Join(adapter, "interop.go"), driver); err != nil {
		return err
	}
	if err := writeIfChanged(filepath.Join(adapter, "main.go"), []byte(adapterMain)); err != nil {
		return err
	}
	return e.run(ctx, src, []string{"GOTOOLCHAIN=local"}, "go", "build", "-o", out, "./cmd/interop-adapter")
}

func (e *env) npmCI(ctx context.Context, dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "libp2p")); err == nil {
		return nil
	}
	return e.run(ctx, dir, nil, "npm", "ci", "--no-audit", "--no-fund")
}

func (e *env) buildBrowser(ctx context.Context, dir string) error {
	if err := e.npmCI(ctx, dir); err != nil {
		return err
	}
	if _, err := exec.LookPath("chromium"); err != nil {
		return fmt.Errorf("chromium not installed (Debian package chromium)")
	}
	return e.run(ctx, dir, nil, "./node_modules/.bin/esbuild", "browser.js", "--bundle", "--format=esm",
		"--platform=browser", "--target=es2022", "--outfile=www/bundle.js")
}

func writeIfChanged(path string, b []byte) error {
	if old, err := os.ReadFile(path); err == nil && string(old) == string(b) {
		return nil
	}
	return os.WriteFile(path, b, 0o644)
}

// jsVersion reads the libp2p version a js project pins.
func jsVersion(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		return "?"
	}
	_, rest, ok := strings.Cut(string(b), `"libp2p": "`)
	if !ok {
		return "?"
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

// semverLess compares vMAJOR.MINOR.PATCH strings.
func semverLess(a, b string) bool {
	var x, y [3]int
	fmt.Sscanf(a, "v%d.%d.%d", &x[0], &x[1], &x[2])
	fmt.Sscanf(b, "v%d.%d.%d", &y[0], &y[1], &y[2])
	for i := range x {
		if x[i] != y[i] {
			return x[i] < y[i]
		}
	}
	return false
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
