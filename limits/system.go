package limits

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"strconv"
	"strings"
)

// readSystem reads the machine's memory and file-descriptor limits; what
// it cannot read is left 0 (unknown).
func readSystem() system {
	sys := system{ram: memTotal(), fds: fdLimit()}
	if cg := cgroupMemory(); cg > 0 && (sys.ram == 0 || cg < sys.ram) {
		sys.ram = cg
	}
	return sys
}

// memTotal is MemTotal from /proc/meminfo, in bytes.
func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	return parseMemInfo(f)
}

func parseMemInfo(f io.Reader) int64 {
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil || kb <= 0 || kb > 1<<43 {
			return 0
		}
		return kb << 10
	}
	return 0
}

// cgroupMemory is the memory limit of this process's cgroup (v2, else v1),
// in bytes; 0 when there is none.
func cgroupMemory() int64 {
	for _, path := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		if n := parseCgroupLimit(b); n > 0 {
			return n
		}
	}
	return 0
}

// parseCgroupLimit reads "max" (none), or a byte count; cgroup v1 writes
// a huge number for "no limit", which the caller's min with MemTotal
// discards.
func parseCgroupLimit(b []byte) int64 {
	s := string(bytes.TrimSpace(b))
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0
	}
	return n
}
