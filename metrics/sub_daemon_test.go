package metrics_test

import (
	"github.com/tachyon-p2p/tachyon/daemon"
	"github.com/tachyon-p2p/tachyon/metrics"
)

// metrics cannot import daemon (daemon imports the root package, which
// imports metrics); this keeps its DaemonTracer what daemon.Config takes.
var _ daemon.Tracer = metrics.DaemonTracer(nil)
