package sandbox

/*
#include <stdlib.h>
#include "spawn_linux.h"
*/
import "C"

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// spawnSpec is a job's first process as Go describes it to ck_spawn.
type spawnSpec struct {
	path       string
	argv, env  []string
	cloneFlags uintptr
	reaper     bool
	stdio      [3]*os.File
	status     *os.File // write end
	release    *os.File // read end, or nil
	dir        *os.File // O_PATH, or nil
	ruleset    int      // Landlock ruleset descriptor, or -1
	extra      []*os.File
	uid, gid   int
	filter     []unix.SockFilter // or nil
	rlimits    []rlimit
}

// spawn starts the job's first process. Nothing of Go runs in it: see
// spawn_linux.c. The returned process is a child of this one.
func spawn(s spawnSpec) (*os.Process, error) {
	if len(s.rlimits) > 8 || len(s.extra) > 4 {
		return nil, fmt.Errorf("sandbox: too many rlimits or descriptors")
	}
	var cs C.struct_ck_spec
	var frees []unsafe.Pointer
	defer func() {
		for _, p := range frees {
			C.free(p)
		}
	}()
	cstr := func(v string) *C.char {
		p := C.CString(v)
		frees = append(frees, unsafe.Pointer(p))
		return p
	}
	cvec := func(vs []string) **C.char {
		size := C.size_t(unsafe.Sizeof((*C.char)(nil))) * C.size_t(len(vs)+1)
		p := (**C.char)(C.malloc(size))
		frees = append(frees, unsafe.Pointer(p))
		arr := unsafe.Slice(p, len(vs)+1)
		for i, v := range vs {
			arr[i] = cstr(v)
		}
		arr[len(vs)] = nil
		return p
	}
	fd := func(f *os.File) C.int {
		if f == nil {
			return -1
		}
		return C.int(f.Fd())
	}
	cs.path = cstr(s.path)
	cs.argv = cvec(s.argv)
	cs.envp = cvec(s.env)
	cs.clone_flags = C.ulong(s.cloneFlags)
	if s.reaper {
		cs.reaper = 1
	}
	cs.stdin_fd, cs.stdout_fd, cs.stderr_fd = fd(s.stdio[0]), fd(s.stdio[1]), fd(s.stdio[2])
	cs.status_fd, cs.release_fd, cs.dir_fd = fd(s.status), fd(s.release), fd(s.dir)
	cs.ruleset_fd = C.int(s.ruleset)
	for i, f := range s.extra {
		cs.extra_fds[i] = fd(f)
	}
	cs.nextra = C.int(len(s.extra))
	cs.uid, cs.gid = C.int(s.uid), C.int(s.gid)
	if len(s.filter) > 0 {
		size := C.size_t(unsafe.Sizeof(unix.SockFilter{})) * C.size_t(len(s.filter))
		insns := C.malloc(size)
		frees = append(frees, insns)
		copy(unsafe.Slice((*unix.SockFilter)(insns), len(s.filter)), s.filter)
		prog := (*C.struct_sock_fprog)(C.malloc(C.size_t(unsafe.Sizeof(C.struct_sock_fprog{}))))
		frees = append(frees, unsafe.Pointer(prog))
		prog.len = C.ushort(len(s.filter))
		prog.filter = (*C.struct_sock_filter)(insns)
		cs.filter = prog
	}
	cs.nrlimits = C.int(len(s.rlimits))
	for i, r := range s.rlimits {
		cs.rlimits[i] = C.struct_ck_rlimit{resource: C.int(r.Resource), cur: C.uint64_t(r.Cur), max: C.uint64_t(r.Max)}
	}
	// Descriptors must not be closed or reused while the child copies them.
	syscall.ForkLock.Lock()
	pid := C.ck_spawn(&cs)
	syscall.ForkLock.Unlock()
	runtime.KeepAlive(&s) // its files' descriptors stay open until the child has copies
	if pid < 0 {
		return nil, fmt.Errorf("sandbox: clone: %w", syscall.Errno(-pid))
	}
	return os.FindProcess(int(pid))
}

// setupFailure turns the status pipe's "step: errno" into words.
func setupFailure(msg string) string {
	step, num, ok := strings.Cut(msg, ": ")
	if !ok {
		return msg
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return msg
	}
	return fmt.Sprintf("%s: %v", step, syscall.Errno(n))
}
