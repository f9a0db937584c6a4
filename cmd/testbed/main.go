// Command testbed builds an emulated network for manual experiments and
// measures the emulator.
//
//	testbed up [-delay 25ms] [-rate 100000000] [-loss 0.01] [-nat eim|symmetric]
//	    builds hosts a (over the emulated link) and b (plain link), and, with
//	    -nat, host c behind a NAT; prints the namespaces and waits for ^C.
//	    Run commands with: ip netns exec <namespace> <command>
//	testbed sweep
//	    removes namespaces left behind by dead testbed processes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tachyon-p2p/tachyon/testbed"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "up":
		err = up(os.Args[2:])
	case "sweep":
		err = testbed.Sweep()
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testbed:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: testbed up [flags] | testbed sweep")
	os.Exit(2)
}

func up(args []string) error {
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	var cfg testbed.LinkConfig
	fs.DurationVar(&cfg.Delay, "delay", 25*time.Millisecond, "one-way delay of a's link")
	fs.DurationVar(&cfg.Jitter, "jitter", 0, "jitter of a's link")
	fs.Float64Var(&cfg.Loss, "loss", 0, "loss probability of a's link")
	fs.Int64Var(&cfg.Rate, "rate", 0, "rate of a's link in bit/s (0: unlimited)")
	fs.IntVar(&cfg.MTU, "mtu", 0, "MTU of a's link (0: 1500)")
	fs.BoolVar(&cfg.Blackhole.UDP, "blackhole-udp", false, "drop UDP on a's link")
	fs.BoolVar(&cfg.Blackhole.IPv6, "blackhole-ipv6", false, "drop IPv6 on a's link")
	nat := fs.String("nat", "", "also add host c behind a NAT: eim or symmetric")
	pcap := fs.String("pcap", "", "capture a's link to this file")
	fs.Parse(args)

	n, err := testbed.New()
	if err != nil {
		return err
	}
	defer n.Close()
	a, err := n.AddHost("a", cfg)
	if err != nil {
		return err
	}
	b, err := n.AddHost("b", testbed.LinkConfig{})
	if err != nil {
		return err
	}
	hosts := []*testbed.Host{a, b}
	if *nat != "" {
		typ := testbed.EndpointIndependent
		switch *nat {
		case "eim":
		case "symmetric":
			typ = testbed.Symmetric
		default:
			return errors.New("-nat must be eim or symmetric")
		}
		r, err := n.AddNAT("nat", typ, testbed.LinkConfig{})
		if err != nil {
			return err
		}
		c, err := r.AddHost("c", testbed.LinkConfig{})
		if err != nil {
			return err
		}
		hosts = append(hosts, c)
		fmt.Printf("NAT %s (%v): outside %v %v\n", r.Namespace(), typ, r.IPv4(), r.IPv6())
	}
	if *pcap != "" {
		stop, err := a.Link().Capture(*pcap)
		if err != nil {
			return err
		}
		defer stop()
	}
	for _, h := range hosts {
		fmt.Printf("host %s: namespace %s  %v  %v\n", h.Name(), h.Namespace(), h.IPv4(), h.IPv6())
	}
	fmt.Printf("configured RTT a<->b: %v. Press ^C to remove the network.\n", n.RTT(a, b))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	fmt.Printf("a's link: %+v\n", a.Link().Stats())
	return nil
}
