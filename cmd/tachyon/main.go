// Command tachyon runs and probes libp2p nodes.
//
//	tachyon node [--listen MADDR]... [--key FILE]   run a node
//	tachyon ping MADDR [-n N]                        ping a peer
//	tachyon id MADDR                                 show a peer's identify
//	tachyon demo                                     two nodes, every transport and security
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

const usage = `usage: tachyon <command> [flags]

commands:
  node [--listen MADDR]... [--key FILE]  run a node until SIGINT/SIGTERM; prints its addresses
  ping MADDR [-n N]                      ping the peer at MADDR (ending in /p2p/<id>)
  id MADDR                               print the identify information of the peer at MADDR
  rtt MADDR [-n N] [-timeout D]          time dial + echo stream + 1-byte round trip, new host each time (JSON)
  daemon [-listen MADDR] [p2pd flags]    serve the p2pd control protocol (run with -h for flags)
  perf [--run-server] --server-address HOST:PORT [...]  libp2p perf server or client (test-plans contract)
  demo                                   connect two in-process nodes over every transport and
                                         security protocol and print a table
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: ctx ends on SIGINT/SIGTERM, and the
// result is the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "node":
		err = cmdNode(ctx, args[1:], stdout, stderr)
	case "ping":
		err = cmdPing(ctx, args[1:], stdout, stderr)
	case "id":
		err = cmdID(ctx, args[1:], stdout, stderr)
	case "demo":
		err = cmdDemo(ctx, args[1:], stdout, stderr)
	case "daemon":
		err = cmdDaemon(ctx, args[1:], stdout, stderr)
	case "rtt":
		err = cmdRTT(ctx, args[1:], stdout, stderr)
	case "perf":
		err = cmdPerf(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "tachyon: unknown command %q\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "tachyon %s: %v\n", args[0], err)
			return 2
		}
		// One line, as scripts expect.
		fmt.Fprintf(stderr, "tachyon %s: %s\n", args[0], strings.ReplaceAll(err.Error(), "\n", " "))
		return 1
	}
	return 0
}

type usageError struct{ error }

// parseInterspersed parses flags that may come before or after positional
// arguments ("ping MADDR -n 3" and "ping -n 3 MADDR" both work).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError{err}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// multiFlag collects a repeated string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }
