// Package dialrank is the policy of smart dialing, without sockets or
// goroutines: which of a peer's addresses to dial, in which order and after
// which delays (Rank, Plan), learned from the RTTs the node measures
// (RTTs) and from the classes of addresses whose packets vanish
// (BlackHoles), plus the record of a dial (Trace) and the dial error built
// from it (DialErrorReport). The swarm runs the plan; this package decides.
//
// # Ranking
//
// The rules are listed at the top of rank.go. In short: QUIC before TCP on
// a host, the named TCP forms (/tls, /noise) instead of plain /tcp on the
// same socket, IPv6 and IPv4 alternating (RFC 8305), WebTransport and
// WebRTC-direct after QUIC, private addresses only on our network,
// addresses in back-off after healthy ones, relays last and not at all
// next to a direct connection, black-holed classes skipped but for a probe.
//
// # Delays
//
// Dials start in waves: the best address, then the second (RFC 8305's one
// address per family), then the third (typically the other transport on
// the best host: TCP when QUIC met silence), then all the other healthy
// direct addresses, then those in back-off, then relays. When the first
// three have had their expected time and more without connecting,
// something is wrong (dead addresses listed first, a black hole not
// learned yet), and the rest race: one address per gap would take seconds
// for a long list (ten dead addresses before a live one). Three single
// waves, not two, so that a UDP black hole costs no more dials than
// go-libp2p's ranker makes (QUIC on each family, then TCP). Each wave
// starts one gap after the previous, the largest gap of the previous
// wave's members:
//
//	gap = clamp(rounds x SRTT + max(4 x RTTVar, Margin), MinGap, MaxGap)
//
// rounds is the handshake's round trips for the transport (Transport.Rounds:
// QUIC 1, TCP with /tls or /noise 2, plain TCP 3, ...), SRTT and RTTVar the
// RTT estimate for the address (RTTs, an RFC 6298 smoothed RTT and its
// variation), Margin (15 ms) the handshake's computation, MinGap 100 ms
// (10 ms on our network) and MaxGap 2 s, RFC 8305's bounds. So the next
// wave starts once the previous one should have connected and did not:
// when the first address works (the common case), it connects before the
// second dial starts, and exactly one dial is made. The variation term is
// TCP's answer to the same question (when to stop waiting for an answer);
// it keeps the gap above a jittery path's handshake time.
//
// With no estimate, go-libp2p's constants apply: 250 ms after a public
// address, 30 ms after a private one; relay addresses start no earlier than
// 500 ms when direct ones are dialed, WebRTC-direct no earlier than 1 s
// after others. Ordering then assumes FallbackRTT (100 ms) for unknown
// paths, so a measured fast path goes first.
//
// # Black holes
//
// See BlackHoles: five dials in a row that find a class silent while the
// peer answered on another class, from at least three peers, block the
// class; a probe every 16 dials that want it, or once a minute, tests it
// again; any answer reopens it.
//
// # Use from the swarm
//
//	view := blackHoles.Admit(addrs) // or the zero view for unfiltered dials
//	plan := dialrank.Plan(addrs, dialrank.Knowledge{Peer: p, Now: now, RTT: rtts, BlackHoles: view, ...})
//	tr := dialrank.NewTrace(p, plan, now)
//	// Start plan.Dials[i] at its Delay; when every started dial has
//	// failed, start the next one at once and move the rest of the
//	// schedule up by the time saved. Record each attempt with
//	// tr.Started and tr.Finished, and end with tr.Done: attempts still
//	// running when one connected become Overtaken, which the black-hole
//	// detector reads as silence when they had run twice their Expect.
//	rtts.Learn(tr)
//	blackHoles.Learn(tr)
//	// On failure, dialrank.DialErrorReport(tr) lists every address, most
//	// useful first.
//
// scenario_test.go's simulate runs a plan exactly so, in virtual time.
package dialrank
