// Package testbed builds small emulated networks out of Linux network
// namespaces, so tests can see real latency, loss, rate limits, black holes
// and NATs instead of loopback.
//
// Topology: every Network has a "core" namespace that routes between its
// public hosts (the Internet). AddHost attaches a host to the core over a
// Link; AddNAT attaches a NAT router, and NAT.AddHost puts hosts behind it.
// Every Link with a non-zero LinkConfig runs through a user-space emulator:
//
//	host ns          link ns (emulator)              upstream ns
//	eth0 <--veth--> down [AF_PACKET] up <--veth--> lN
//
// The emulator moves Ethernet frames between the two veth ends in the link
// namespace with batched AF_PACKET sockets, holding each frame in a FIFO
// until its release time (rate serialisation + delay + jitter). It runs in
// this process; only socket creation needs the link namespace.
//
// Addresses: link k uses 10.k.0.0/24 and fd00:k::/64, upstream .1/::1, the
// downstream node .2/::2. Under the PublicAddresses option, links to the
// core use 11.k.0.0/24 and 2a0c:k::/64 instead, which libp2p counts as
// public; that is safe only because nothing is routed outside the
// namespaces, which CheckSealed asserts before such an address is assigned.
//
// NATs masquerade IPv4 and IPv6 (or IPv4 only, with routed IPv6 prefixes
// for the hosts behind them: RoutedIPv6), forward ports (NAT.Forward) and
// can be renumbered (NAT.ChangeOutsideAddress).
//
// Namespaces are named tb<pid>-<seq>-..., so Sweep can remove those left by
// dead processes. Requires root, iproute2, ethtool and (for NATs) nftables.
package testbed
