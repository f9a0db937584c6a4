package webrtcnat

import (
	"context"
	"time"
)

// jsAttempt is one dial result of the js-libp2p endpoint (b2b-peer.js).
type jsAttempt struct {
	Connected          bool    `json:"connected"`
	Error              string  `json:"error"`
	RemoteAddr         string  `json:"remoteAddr"`
	RelayedAtMs        float64 `json:"relayedAtMs"`
	RelayToDirectMs    float64 `json:"relayToDirectMs"`
	RelayToFirstEchoMs float64 `json:"relayToFirstEchoMs"`
	FirstEchoError     string  `json:"firstEchoError"`
	raw                string
}

func (a jsAttempt) ok() bool {
	return a.Connected && a.FirstEchoError == "" && a.RelayToFirstEchoMs > 0
}

func (a jsAttempt) relayToReply() time.Duration { return msDur(a.RelayToFirstEchoMs) }

func jsOKValues(as []jsAttempt, f func(jsAttempt) float64) []float64 {
	var out []float64
	for _, a := range as {
		if a.ok() {
			out = append(out, f(a))
		}
	}
	return out
}

func jsOKCount(as []jsAttempt) int { return len(jsOKValues(as, func(jsAttempt) float64 { return 0 })) }

func (e *env) runJS(ctx context.Context, res *results) {
	res.jsSkipped = "not implemented yet"
}
