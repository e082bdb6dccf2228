package jobstest

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CPU readings for benchmarks that report CPU per notification: on a
// shared host, CPU time drifts far less than latency does.

// userHZ is Linux's clock tick for /proc's CPU counters.
const userHZ = 100

// SelfCPU is the user and system CPU time this process has used.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ProcessesCPU is the user and system CPU time the processes pids have
// used, from Linux's /proc (0 for those it cannot read: gone, or a server
// on another machine).
func ProcessesCPU(pids ...int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		// The fields after the command (which may hold spaces) start at
		// the state, the 3rd; utime and stime are the 14th and 15th.
		end := strings.LastIndexByte(string(raw), ')')
		if end < 0 {
			continue
		}
		f := strings.Fields(string(raw[end+1:]))
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + s
	}
	return time.Duration(ticks) * time.Second / userHZ
}

// MachineBusyCPU is the CPU time all processes on this machine have used
// since boot, from Linux's /proc/stat (0 elsewhere): on a saturated
// machine, its growth per unit of work is what bounds the rate.
func MachineBusyCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(fields) < 9 || fields[0] != "cpu" {
		return 0
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, _ := strconv.ParseInt(fields[i], 10, 64)
		ticks += v
	}
	return time.Duration(ticks) * time.Second / userHZ
}
