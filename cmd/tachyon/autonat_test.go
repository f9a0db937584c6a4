package main

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	pstun "github.com/pion/stun/v3"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// TestNodeReachability: a node bootstrapped to three others (AutoNAT
// servers by default), on loopback declared public, prints the verdict on
// each of its addresses and then advertises them.
func TestNodeReachability(t *testing.T) {
	leakcheck.Check(t)
	var boot []string
	for range 3 {
		addr, _ := startNode(t, "--listen", "/ip4/127.0.0.1/tcp/0", "--public-prefixes", "127.0.0.0/8")
		boot = append(boot, "--bootstrap", addr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	args := append([]string{"node", "--listen", "/ip4/127.0.0.1/tcp/0", "--public-prefixes", "127.0.0.0/8"}, boot...)
	go func() { done <- run(ctx, args, &out, &errOut) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("node did not stop")
		}
	}()
	reach := regexp.MustCompile(`(?m)^reachability: /ip4/127\.0\.0\.1/tcp/\d+ public \(was unknown; [23] servers\)$`)
	adv := regexp.MustCompile(`(?m)^advertised: /ip4/127\.0\.0\.1/tcp/\d+ /ip4/127\.0\.0\.1/tcp/\d+/tls /ip4/127\.0\.0\.1/tcp/\d+/noise$`)
	deadline := time.Now().Add(15 * time.Second)
	for !reach.MatchString(out.String()) || !adv.MatchString(out.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("no verdict or advertised set; stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDebugStatsRelay: a relay's /debug/stats carries its counters.
func TestDebugStatsRelay(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"node", "--listen", "/ip4/127.0.0.1/tcp/0", "--relay-service", "--debug-addr", "127.0.0.1:0"}, &out, &errOut)
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("node did not stop")
		}
	}()
	re := regexp.MustCompile(`debug server on (http://\S+)`)
	deadline := time.Now().Add(10 * time.Second)
	var url string
	for {
		if m := re.FindStringSubmatch(errOut.String()); m != nil {
			url = m[1]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no debug server; stderr: %s", errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st debugStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.Relay == nil || st.Relay.CircuitsOpened != 0 || st.Goroutines == 0 {
		t.Fatalf("stats %+v, want relay counters", st)
	}
	if !strings.Contains(url, "/debug/stats") {
		t.Fatalf("url %s", url)
	}
}

// TestNodeSTUN: --stun serves Binding requests and says where.
func TestNodeSTUN(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"node", "--listen", "/ip4/127.0.0.1/tcp/0", "--stun", "127.0.0.1:0"}, &out, &errOut)
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("node did not stop")
		}
	}()
	re := regexp.MustCompile(`(?m)^stun: (127\.0\.0\.1:\d+)$`)
	deadline := time.Now().Add(10 * time.Second)
	var addr string
	for {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			addr = m[1]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no stun line; stdout %s stderr %s", out.String(), errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	c, err := pstun.Dial("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var mapped pstun.XORMappedAddress
	got := make(chan error, 1)
	if err := c.Start(pstun.MustBuild(pstun.TransactionID, pstun.BindingRequest), func(e pstun.Event) {
		if e.Error != nil {
			got <- e.Error
			return
		}
		got <- mapped.GetFrom(e.Message)
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil || !mapped.IP.IsLoopback() {
			t.Fatalf("binding: %v, mapped %v", err, mapped)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no STUN answer")
	}
}
