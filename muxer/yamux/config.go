package yamux

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Config tunes a session. The zero value (or a nil *Config) gives the
// defaults, which match go-libp2p's settings.
type Config struct {
	// InitialStreamWindow is the receive window each stream starts with.
	// Default and minimum 256 KiB, the spec's initial window: anything
	// larger is announced to the peer with a delta on SYN or ACK.
	InitialStreamWindow uint32
	// MaxStreamWindow caps the receive window that auto-tuning grows to
	// when the reader consumes a whole window within a few round trips.
	// Default 16 MiB; never below InitialStreamWindow.
	MaxStreamWindow uint32
	// KeepAliveInterval is how often an idle-or-not session pings the peer,
	// unless a frame from the peer arrived since the last tick (the window
	// after such a tick is an eighth longer); a ping still unanswered at
	// the next tick closes the session.
	// Default 30 s; negative disables keepalive.
	KeepAliveInterval time.Duration
	// MaxIncomingStreams bounds the streams the peer may have open at once;
	// SYNs beyond it are refused with RST. Default 1000.
	MaxIncomingStreams int
	// MaxRefusedStreams is how many SYNs a limit (MaxIncomingStreams or
	// the scope's) may refuse within a second before the session closes
	// the connection as abusive, with GoAway(protocol error). Admitted
	// streams never count. Default 256; negative disables.
	MaxRefusedStreams int
	// MaxAckBacklog bounds the outbound streams the peer has not yet
	// acknowledged; OpenStream waits (honouring its context) beyond it.
	// Default 256, the limit the spec and go-yamux use.
	MaxAckBacklog int
	// WriteTimeout bounds a single write to the connection: a peer that
	// stops reading for this long gets the session closed. Default 10 s;
	// negative disables.
	WriteTimeout time.Duration
	// MaxFrameSize caps the payload of the data frames this side sends.
	// Default 256 KiB, the spec's initial window: go-yamux and js-yamux
	// send 64 KiB, but the receiver hands each frame to the reading
	// goroutine with a wake-up, and a wake-up per 64 KiB cost as much CPU
	// as the copy of the data. Peers take any frame the window allows.
	// Capped at 1 MiB, the largest frame rust-yamux accepts.
	MaxFrameSize uint32
	// Logger receives debug records of streams refused or reset for lack
	// of resources (at most one a second). Nil discards them.
	Logger *slog.Logger
}

const (
	defaultMaxStreamWindow    = 16 << 20
	defaultKeepAliveInterval  = 30 * time.Second
	defaultMaxIncomingStreams = 1000
	defaultMaxAckBacklog      = 256
	defaultMaxRefusedStreams  = 256
	defaultWriteTimeout       = 10 * time.Second
	defaultMaxFrameSize       = 256 << 10
	maxMaxFrameSize           = 1 << 20
)

// withDefaults returns a copy of c with every zero field set to its default
// and every out-of-range field clamped.
func (c *Config) withDefaults() Config {
	var cfg Config
	if c != nil {
		cfg = *c
	}
	if cfg.InitialStreamWindow < initialWindow {
		cfg.InitialStreamWindow = initialWindow
	}
	if cfg.MaxStreamWindow == 0 {
		cfg.MaxStreamWindow = defaultMaxStreamWindow
	}
	if cfg.MaxStreamWindow < cfg.InitialStreamWindow {
		cfg.MaxStreamWindow = cfg.InitialStreamWindow
	}
	if cfg.KeepAliveInterval == 0 {
		cfg.KeepAliveInterval = defaultKeepAliveInterval
	}
	if cfg.MaxIncomingStreams <= 0 {
		cfg.MaxIncomingStreams = defaultMaxIncomingStreams
	}
	if cfg.MaxRefusedStreams == 0 {
		cfg.MaxRefusedStreams = defaultMaxRefusedStreams
	}
	if cfg.MaxAckBacklog <= 0 {
		cfg.MaxAckBacklog = defaultMaxAckBacklog
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = defaultWriteTimeout
	}
	if cfg.MaxFrameSize == 0 {
		cfg.MaxFrameSize = defaultMaxFrameSize
	}
	if cfg.MaxFrameSize > maxMaxFrameSize {
		cfg.MaxFrameSize = maxMaxFrameSize
	}
	return cfg
}

var (
	// ErrProtocol is wrapped by every error caused by a peer breaking the
	// yamux spec; the session answers it with GoAway(protocol error).
	ErrProtocol = errors.New("yamux: protocol error")
	// ErrSessionClosed is returned by operations on a closed session.
	ErrSessionClosed = errors.New("yamux: session closed")
	// ErrRemoteGoAway is returned by OpenStream after the peer sent GoAway.
	ErrRemoteGoAway = errors.New("yamux: peer sent GoAway, no new streams")
	// ErrStreamClosed is returned by writes after CloseWrite or Close, and
	// by reads after CloseRead or Close.
	ErrStreamClosed = errors.New("yamux: stream closed")
	// ErrKeepAliveTimeout closes a session whose peer left a keepalive ping
	// unanswered for a whole interval.
	ErrKeepAliveTimeout = errors.New("yamux: keepalive ping timed out")
	// ErrStreamsExhausted is returned when all stream IDs have been used.
	ErrStreamsExhausted = errors.New("yamux: stream IDs exhausted")
)

// GoAwayError is the error a session closes with when the peer sends GoAway
// with a non-normal code.
type GoAwayError struct {
	Code uint32
}

func (e *GoAwayError) Error() string {
	switch e.Code {
	case GoAwayProtocolError:
		return "yamux: peer sent GoAway: protocol error"
	case GoAwayInternalError:
		return "yamux: peer sent GoAway: internal error"
	default:
		return fmt.Sprintf("yamux: peer sent GoAway with code %d", e.Code)
	}
}
