// Command golibp2p-peer is a real go-libp2p peer that the tachyon test suite
// (and later the benchmarks) drive from the command line. See README.md for
// the exact contract: flags, stdout lines, JSON fields and exit codes.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"sync"
	"time"
)

const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// errUsage marks command-line errors (exit code 2).
var errUsage = errors.New("usage")

func usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

var stdoutMu sync.Mutex

// emit writes one JSON object as one line to stdout, in a single write.
func emit(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		log.Printf("marshal: %v", err)
		return
	}
	printLine(string(b))
}

func printLine(s string) {
	stdoutMu.Lock()
	defer stdoutMu.Unlock()
	_, _ = os.Stdout.WriteString(s + "\n")
}

type failure struct {
	Event string `json:"event"`
	OK    bool   `json:"ok"`
	Error string `json:"error"`
}

func fail(err error) int {
	emit(failure{Event: "result", OK: false, Error: err.Error()})
	log.Printf("error: %v", err)
	if errors.Is(err, errUsage) {
		return exitUsage
	}
	return exitFail
}

func millis(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}

const usageText = `usage:
  golibp2p-peer listen --transport tcp|quic-v1|webtransport [--security noise|tls] [--muxer yamux] [--key-seed HEX32] [--listen MADDR]...
  golibp2p-peer dial MADDR --transport tcp|quic-v1|webtransport [--security noise|tls] [--muxer yamux] [--pings 10] [--echo-bytes 1048576] [--timeout 30s] [--key-seed HEX32]
  golibp2p-peer perf --run-server --server-address IP:PORT
  golibp2p-peer perf --server-address IP:PORT|MADDR --transport tcp|quic-v1|webtransport|webrtc-direct --upload-bytes N --download-bytes N
  golibp2p-peer relay [--listen MADDR]... [--transport tcp|quic-v1] [--public-prefixes CIDR,...]
  golibp2p-peer holepunch-listen --relay MADDR [--listen MADDR]... [--transport tcp|quic-v1] [--public-prefixes CIDR,...]
  golibp2p-peer holepunch-dial RELAY/p2p-circuit/p2p/B [--transport tcp|quic-v1] [--timeout 60s] [--public-prefixes CIDR,...]
  golibp2p-peer autonat-server [--listen MADDR]... [--transport tcp|quic-v1|tcp,quic-v1]
  golibp2p-peer autonat-client --server MADDR/p2p/ID... [--listen MADDR]... [--transport tcp|quic-v1|tcp,quic-v1] [--connect-timeout 10s] [--observed-addr-threshold N]
  golibp2p-peer rtt MADDR --transport tcp|quic-v1|webtransport [--security noise|tls] [--muxer yamux] [--count 10] [--timeout 30s]
  golibp2p-peer dial-time [-n N] [-timeout D] MADDR/p2p/ID...
`

func main() {
	log.SetOutput(os.Stderr)
	log.SetFlags(log.Lmicroseconds)
	log.SetPrefix("golibp2p-peer: ")
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usageText)
		return fail(usagef("missing subcommand"))
	}
	switch args[0] {
	case "listen":
		return cmdListen(args[1:])
	case "dial":
		return cmdDial(args[1:])
	case "rtt":
		return cmdRTT(args[1:])
	case "perf":
		return cmdPerf(args[1:])
	case "relay":
		return cmdRelay(args[1:])
	case "holepunch-listen":
		return cmdHolePunchListen(args[1:])
	case "holepunch-dial":
		return cmdHolePunchDial(args[1:])
	case "autonat-server":
		return cmdAutoNATServer(args[1:])
	case "autonat-client":
		return cmdAutoNATClient(args[1:])
	case "dial-time":
		return cmdDialTime(args[1:])
	case "-h", "--help", "help":
		fmt.Fprint(os.Stderr, usageText)
		return exitOK
	default:
		fmt.Fprint(os.Stderr, usageText)
		return fail(usagef("unknown subcommand %q", args[0]))
	}
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// newFlagSet returns a flag set with the stack flags every subcommand shares.
func newFlagSet(name string, c *stackConfig) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.Transport, "transport", "", "transport: "+names(transports)+" (required)")
	fs.StringVar(&c.Security, "security", "", "security: "+names(securities)+" (required for tcp, ignored for quic-v1 and webtransport)")
	fs.StringVar(&c.Muxer, "muxer", "yamux", "muxer: "+names(muxers))
	fs.StringVar(&c.ProtoVer, "protocol-version", "", "identify protocolVersion to announce (default: go-libp2p's, which is empty)")
	fs.StringVar(&c.KeySeed, "key-seed", "", "32-byte ed25519 seed as 64 hex characters (default: random identity)")
	return fs
}

// parseArgs parses flags and positional arguments in any order
// ("dial MADDR --transport tcp" and "dial --transport tcp MADDR" both work)
// and checks that exactly wantPos positional arguments were given.
func parseArgs(fs *flag.FlagSet, args []string, wantPos int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usagef("%s: %v", fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) != wantPos {
		return nil, usagef("%s: want %d positional argument(s), got %d %q", fs.Name(), wantPos, len(pos), pos)
	}
	return pos, nil
}

func checkStack(c *stackConfig) error {
	if c.Transport == "" {
		return usagef("--transport is required")
	}
	if e, ok := transports[c.Transport]; ok && !e.selfSecured && c.Security == "" {
		return usagef("--security is required for --transport %s", c.Transport)
	}
	if err := c.validate(); err != nil {
		return usagef("%v", err)
	}
	return nil
}
