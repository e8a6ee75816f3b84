package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupRoot is where the host mounts its cgroup hierarchies.
const cgroupRoot = "/sys/fs/cgroup"

// cgroup is one job's control groups: memory, pids and cpu, in the v2
// unified hierarchy when the host has one, else in the v1 controllers.
// What cannot be created or written is named in unapplied.
type cgroup struct {
	v2        bool
	dirs      map[string]string // controller ("memory", "pids", "cpu") to directory
	unapplied []string
	memLimit  int64
}

// newCgroup makes the job's groups. accountCPU adds a CPU accounting
// group (v1 cpuacct; v2 has cpu.stat anyway) for jobs whose CPU time the
// kernel's rusage cannot see: bubblewrap reaps the job inside its own
// namespace.
func newCgroup(id string, lim Limits, accountCPU bool) *cgroup {
	cg := &cgroup{dirs: map[string]string{}, memLimit: lim.MemoryBytes}
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		cg.v2 = true
	}
	set := func(ctrl, file, value string) {
		dir, err := cg.dir(ctrl, id)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, file), []byte(value), 0)
		}
		if err != nil {
			cg.unapplied = append(cg.unapplied, fmt.Sprintf("%s %s=%s: %v", ctrl, file, value, errors.Unwrap(err)))
		}
	}
	if cg.v2 {
		set("memory", "memory.max", strconv.FormatInt(lim.MemoryBytes, 10))
		set("memory", "memory.swap.max", "0")
		set("pids", "pids.max", strconv.Itoa(lim.MaxProcesses))
		if lim.CPUShares > 0 {
			// cpu.shares 2..262144 (default 1024) to cpu.weight 1..10000 (default 100).
			set("cpu", "cpu.weight", strconv.Itoa(max(1, min(10000, 1+(lim.CPUShares-2)*9999/262142))))
		}
		return cg
	}
	set("memory", "memory.limit_in_bytes", strconv.FormatInt(lim.MemoryBytes, 10))
	if _, err := os.Stat(filepath.Join(cgroupRoot, "memory", "memory.memsw.limit_in_bytes")); err == nil {
		set("memory", "memory.memsw.limit_in_bytes", strconv.FormatInt(lim.MemoryBytes, 10))
	}
	set("pids", "pids.max", strconv.Itoa(lim.MaxProcesses))
	if lim.CPUShares > 0 {
		set("cpu", "cpu.shares", strconv.Itoa(lim.CPUShares))
	}
	if accountCPU {
		if _, err := cg.dir("cpuacct", id); err != nil {
			cg.unapplied = append(cg.unapplied, fmt.Sprintf("cpuacct: %v (the report's CPU time is bubblewrap's only)", errors.Unwrap(err)))
		}
	}
	return cg
}

// dir creates (once) the job's directory for a controller.
func (cg *cgroup) dir(ctrl, id string) (string, error) {
	if d, ok := cg.dirs[ctrl]; ok {
		return d, nil
	}
	base := filepath.Join(cgroupRoot, ctrl)
	if cg.v2 {
		// One group holds every controller.
		if d, ok := cg.anyDir(); ok {
			cg.dirs[ctrl] = d
			return d, nil
		}
		base = cgroupRoot
	}
	parent := filepath.Join(base, "clawkeep")
	if err := os.Mkdir(parent, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return "", err
	}
	if cg.v2 {
		// A child gets only the controllers its parent delegates; a
		// controller the host withholds shows up as a failed limit.
		for _, dir := range []string{base, parent} {
			for _, c := range []string{"+memory", "+pids", "+cpu"} {
				os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte(c), 0)
			}
		}
	}
	d := filepath.Join(parent, id)
	if err := os.Mkdir(d, 0o755); err != nil {
		return "", err
	}
	cg.dirs[ctrl] = d
	return d, nil
}

func (cg *cgroup) anyDir() (string, bool) {
	for _, d := range cg.dirs {
		return d, true
	}
	return "", false
}

// add moves pid (before it runs the job) into every group.
func (cg *cgroup) add(pid int) error {
	done := map[string]bool{}
	for ctrl, d := range cg.dirs {
		if done[d] {
			continue
		}
		done[d] = true
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("sandbox: cgroup %s: %w", ctrl, err)
		}
	}
	return nil
}

// finish reads peak memory and which limits fired into rep, then removes
// the groups.
func (cg *cgroup) finish(rep *Report) {
	read := func(ctrl, file string) string {
		d, ok := cg.dirs[ctrl]
		if !ok {
			return ""
		}
		b, _ := os.ReadFile(filepath.Join(d, file))
		return strings.TrimSpace(string(b))
	}
	field := func(text, key string) int64 {
		for _, line := range strings.Split(text, "\n") {
			if v, ok := strings.CutPrefix(line, key+" "); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		return 0
	}
	var peak, ooms, pidsMax, cpuUS int64
	if cg.v2 {
		cpuUS = field(read("cpuacct", "cpu.stat"), "usage_usec")
		peak, _ = strconv.ParseInt(read("memory", "memory.peak"), 10, 64)
		ooms = field(read("memory", "memory.events"), "oom_kill")
		pidsMax = field(read("pids", "pids.events"), "max")
	} else {
		peak, _ = strconv.ParseInt(read("memory", "memory.max_usage_in_bytes"), 10, 64)
		ns, _ := strconv.ParseInt(read("cpuacct", "cpuacct.usage"), 10, 64)
		cpuUS = ns / 1000
		ooms = field(read("memory", "memory.oom_control"), "oom_kill")
		pidsMax = field(read("pids", "pids.events"), "max")
	}
	if peak > 0 {
		rep.PeakMemory = peak
	}
	rep.CPUMS = max(rep.CPUMS, cpuUS/1000)
	if ooms > 0 {
		rep.Hit = append(rep.Hit, MeterMemory)
		rep.Meter, rep.Reason = MeterMemory, fmt.Sprintf("memory limit of %d bytes reached; the kernel killed the job", cg.memLimit)
		rep.Outcome = Killed
	}
	if pidsMax > 0 {
		rep.Hit = append(rep.Hit, MeterProcesses)
	}
	rep.Unapplied = append(rep.Unapplied, cg.unapplied...)
	cg.remove()
}

// remove deletes the groups; the kernel refuses while a process remains,
// and the job's processes may take a moment to be reaped after a kill.
func (cg *cgroup) remove() {
	for _, d := range cg.dirs {
		for i := 0; i < 50; i++ {
			err := syscall.Rmdir(d)
			if err == nil || errors.Is(err, syscall.ENOENT) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
