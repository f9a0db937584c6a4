package limits

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// ErrLimit is matched by every refusal: errors.Is(err, ErrLimit).
var ErrLimit = errors.New("resource limit reached")

// LimitError is a refusal. Its text reads, for example:
//
//	limit reached: connections per IP for 10.1.0.2 is 8 (8 in use); raise limits.Config.ConnsPerIP
type LimitError struct {
	// Limit names the limit ("connections per IP"), Scope what it applied
	// to ("10.1.0.2", a peer ID, a protocol; "node" for node-wide ones).
	Limit, Scope string
	// Option is the Config field that raises it, with the map key for
	// per-protocol overrides: `ProtocolStreams["/ipfs/ping/1.0.0"]`.
	Option string
	// Value is the limit and Current the use it was reached at. For
	// memory they are bytes; for rates Value is streams per second
	// (rounded up) and Current the burst that was used up.
	Value, Current int64
	// Unit is "" for counts, "bytes", "streams/s" or "ms" (a penalty:
	// Value is its length, Current what is left of it).
	Unit string
}

func (e *LimitError) Error() string {
	var value, current string
	switch e.Unit {
	case "bytes":
		value, current = formatBytes(e.Value), formatBytes(e.Current)+" in use"
	case "ms":
		value = (time.Duration(e.Value) * time.Millisecond).String()
		current = (time.Duration(max(e.Current, 0)) * time.Millisecond).String() + " left"
	case "streams/s":
		value, current = strconv.FormatInt(e.Value, 10)+" streams/s", "burst of "+strconv.FormatInt(e.Current, 10)+" used up"
	default:
		value, current = strconv.FormatInt(e.Value, 10), strconv.FormatInt(e.Current, 10)+" in use"
	}
	return fmt.Sprintf("limit reached: %s for %s is %s (%s); raise limits.Config.%s", e.Limit, e.Scope, value, current, e.Option)
}

// Is makes errors.Is(err, ErrLimit) true.
func (e *LimitError) Is(target error) bool { return target == ErrLimit }

// formatBytes prints n exactly when it is a whole number of KiB or MiB,
// else with two decimals.
func formatBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 2, 64) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 2, 64) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " B"
}
