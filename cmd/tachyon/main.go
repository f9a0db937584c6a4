// Command tachyon runs and probes libp2p nodes.
//
//	tachyon node [--listen MADDR]... [--key FILE] [flags]   run a node
//	tachyon ping MADDR [flags]                              ping a peer
//	tachyon id MADDR [flags]                                show a peer's identify
//	tachyon rtt MADDR [flags]                               time dial + echo round trips (JSON)
//	tachyon perf --server-address ADDR [flags]              perf client (test-plans contract)
//	tachyon perf --run-server [flags]                       perf server
//	tachyon demo [flags]                                    two nodes, every transport and security
//	tachyon daemon [p2pd flags]                             p2pd control protocol
//	tachyon version                                         print the version
//
// Every command lists its flags with -h.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"

	"github.com/tachyon-p2p/tachyon"
)

// command is one subcommand.
type command struct {
	name  string
	args  string // what follows "tachyon <name>" on the usage line
	short string // one-line description
	run   func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands are the subcommands, in the order the usage lists them. help is
// handled by run itself.
var commands = []command{
	{"node", "[--listen MADDR]... [--key FILE] [flags]", "run a node until SIGINT/SIGTERM; prints its addresses", cmdNode},
	{"ping", "MADDR [flags]", "ping the peer at MADDR (ending in /p2p/<peer id>)", cmdPing},
	{"id", "MADDR [flags]", "print the identify information of the peer at MADDR", cmdID},
	{"dial", "MADDR... [flags]", "time Connect to a peer given all its addresses (or to several peers in turn), a new host each time; every attempt of the dialer (JSON)", cmdDial},
	{"rtt", "MADDR [flags]", "time dial + echo stream + 1-byte round trip, a new host each time (JSON)", cmdRTT},
	{"punch", "RELAY/p2p-circuit/p2p/PEER [flags]", "connect through a relay, wait for the hole-punched direct connection, time an echo over it (JSON)", cmdPunch},
	{"perf", "--server-address ADDR [flags]  |  tachyon perf --run-server [flags]", "libp2p perf client or server (test-plans perf contract)", cmdPerf},
	{"demo", "[flags]", "connect two in-process nodes over every transport and security protocol", cmdDemo},
	{"transport-interop", "", "one side of the libp2p test-plans transport-interop contract, configured by the environment", cmdTransportInterop},
	{"daemon", "[-listen MADDR] [p2pd flags]", "serve the p2pd control protocol (go-libp2p-daemon interop)", cmdDaemon},
	{"version", "", "print the tachyon and Go versions", cmdVersion},
}

func lookup(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

// topUsage lists the subcommands.
func topUsage() string {
	var b strings.Builder
	b.WriteString("tachyon runs and probes libp2p nodes.\n\nusage: tachyon <command> [arguments] [flags]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-8s %s\n", c.name, c.short)
	}
	fmt.Fprintf(&b, "  %-8s %s\n", "help", "print this list, or with a command name that command's usage")
	b.WriteString("\nRun 'tachyon <command> -h' for the flags of a command.\n")
	return b.String()
}

// commandUsage is what "tachyon <cmd> -h" prints: the description, the
// usage line and the flags with their defaults.
func commandUsage(c *command, fs *flag.FlagSet) string {
	var b strings.Builder
	fmt.Fprintf(&b, "tachyon %s: %s\n\nusage: tachyon %s", c.name, c.short, c.name)
	if c.args != "" {
		b.WriteString(" " + c.args)
	}
	b.WriteString("\n")
	if fs != nil {
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			if c.name == "daemon" {
				b.WriteString("\nflags (p2pd spelling, -flag or -flag=value):\n")
			} else {
				b.WriteString("\nflags (-flag or --flag, before or after the arguments):\n")
			}
			out := fs.Output()
			fs.SetOutput(&b)
			fs.PrintDefaults()
			fs.SetOutput(out)
		}
	}
	return b.String()
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: ctx ends on SIGINT/SIGTERM, and the
// result is the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// Host goroutines log to stderr while the command writes to it too.
	stderr = &syncWriter{w: stderr}
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage())
		return 2
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && lookup(args[1]) != nil {
			return run(ctx, []string{args[1], "-h"}, stdout, stderr)
		}
		if len(args) > 1 {
			fmt.Fprintf(stderr, "tachyon help: unknown command %q\n%s", args[1], topUsage())
			return 2
		}
		fmt.Fprint(stdout, topUsage())
		return 0
	case "-version", "--version":
		name = "version"
	}
	c := lookup(name)
	if c == nil {
		fmt.Fprintf(stderr, "tachyon: unknown command %q\n\n%s", name, topUsage())
		return 2
	}
	err := c.run(ctx, args[1:], stdout, stderr)
	if err == nil {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		if errors.Is(ue.error, flag.ErrHelp) {
			fmt.Fprint(stdout, commandUsage(c, ue.fs))
			return 0
		}
		if ue.fs != nil { // a flag the command does not know, or a bad value
			fmt.Fprintf(stderr, "tachyon %s: %s\n\n%s", name, oneLine(ue.error), commandUsage(c, ue.fs))
			return 2
		}
		fmt.Fprintf(stderr, "tachyon %s: %s (see tachyon %s -h)\n", name, oneLine(ue.error), name)
		return 2
	}
	// One line, as scripts expect; a dial that tried several addresses
	// adds one indented line per address after it.
	var ex *explained
	if errors.As(err, &ex) && err == error(ex) {
		fmt.Fprintf(stderr, "tachyon %s: %s\n", name, err)
		return 1
	}
	fmt.Fprintf(stderr, "tachyon %s: %s\n", name, oneLine(err))
	return 1
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }

// usageError is a mistake in the command line: exit code 2. fs is set for
// errors of flag parsing (flag.ErrHelp included), whose message is followed
// by the flag list.
type usageError struct {
	error
	fs *flag.FlagSet
}

func usagef(format string, args ...any) error {
	return usageError{error: fmt.Errorf(format, args...)}
}

// parseInterspersed parses flags that may come before or after positional
// arguments ("ping MADDR -n 3" and "ping -n 3 MADDR" both work).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError{err, fs}
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

// syncWriter serializes writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// logLevel is the --log-level flag: how much the host logs to stderr.
type logLevel struct{ slog.Level }

// defaultLogLevel is warn: problems the host works around, and nothing on a
// good run.
const defaultLogLevel = slog.LevelWarn

func addLogLevel(fs *flag.FlagSet) *logLevel {
	l := &logLevel{defaultLogLevel}
	fs.Var(l, "log-level", "`LEVEL` of the host log on stderr: debug, info, warn or error")
	return l
}

func (l *logLevel) String() string {
	if l == nil {
		return ""
	}
	return strings.ToLower(l.Level.String())
}

func (l *logLevel) Set(s string) error {
	lv, err := parseLogLevel(s)
	if err != nil {
		return err
	}
	l.Level = lv
	return nil
}

func parseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("want debug, info, warn or error")
}

// option gives a host a text logger on w at this level.
func (l *logLevel) option(w io.Writer) tachyon.Option {
	return tachyon.Logger(l.logger(w))
}

// logger is a text logger on w at this level.
func (l *logLevel) logger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l.Level}))
}

func cmdVersion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("version", flag.ContinueOnError)
	pos, err := parseInterspersed(fl, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	bi, _ := debug.ReadBuildInfo()
	fmt.Fprintln(stdout, versionLine(bi))
	return nil
}

// versionLine is "tachyon VERSION (go1.x, os/arch)". VERSION is the module
// version the binary was built at (go install …@v0.1.0), or for a build
// from a work tree, where Go reports "(devel)", the release this source
// is (tachyon.Version) with "-devel" and the commit if Go recorded one.
func versionLine(bi *debug.BuildInfo) string {
	v := ""
	var rev string
	modified := false
	if bi != nil {
		v = bi.Main.Version
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	var extra []string
	if v == "" || v == "(devel)" {
		v = tachyon.Version + "-devel"
		if rev != "" {
			c := "commit " + rev[:min(12, len(rev))]
			if modified {
				c += "+modified"
			}
			extra = append(extra, c)
		}
	}
	goVersion := runtime.Version()
	if bi != nil && bi.GoVersion != "" {
		goVersion = bi.GoVersion
	}
	extra = append(extra, goVersion, runtime.GOOS+"/"+runtime.GOARCH)
	return fmt.Sprintf("tachyon %s (%s)", v, strings.Join(extra, ", "))
}
