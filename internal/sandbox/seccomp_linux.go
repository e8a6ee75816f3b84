package sandbox

import (
	"encoding/binary"
	"fmt"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// deniedSyscalls fail with EPERM in every process and container sandbox.
// They are the ways out of a namespace or into another process or the
// kernel: mounting, new namespaces, tracing, loading code into the kernel,
// keyrings, and the file-handle calls that walk around a bind mount. A
// deny list, not an allow list, so ordinary programs run unchanged; the
// namespaces, Landlock and the unprivileged identity are the other walls.
var deniedSyscalls = []string{
	"mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen",
	"fsconfig", "fsmount", "fspick", "mount_setattr",
	"unshare", "setns",
	"ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
	"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
	"bpf", "perf_event_open", "userfaultfd", "iopl", "ioperm",
	"keyctl", "add_key", "request_key",
	"open_by_handle_at", "name_to_handle_at",
	"reboot", "swapon", "swapoff", "acct", "settimeofday", "clock_settime", "adjtimex",
	"quotactl", "lookup_dcookie", "syslog", "vhangup", "personality",
}

// nsFlags are clone flags that create namespaces; clone with any of them
// fails. clone3 passes its flags in memory a filter cannot read, so it
// fails with ENOSYS and libc falls back to clone.
const nsFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET |
	unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWTIME

func errno(e unix.Errno) seccomp.Action { return seccomp.ActionErrno | seccomp.Action(e) }

func seccompPolicy() seccomp.Policy {
	return seccomp.Policy{
		DefaultAction: seccomp.ActionAllow,
		Syscalls: []seccomp.SyscallGroup{
			{Names: deniedSyscalls, Action: errno(unix.EPERM)},
			{Names: []string{"clone3"}, Action: errno(unix.ENOSYS)},
			{
				NamesWithCondtions: []seccomp.NameWithConditions{{
					Name:       "clone",
					Conditions: seccomp.ArgumentConditions{{Argument: 0, Operation: seccomp.BitsSet, Value: nsFlags}},
				}},
				Action: errno(unix.EPERM),
			},
			// TIOCSTI pushes bytes into the controlling terminal's input.
			{
				NamesWithCondtions: []seccomp.NameWithConditions{{
					Name:       "ioctl",
					Conditions: seccomp.ArgumentConditions{{Argument: 1, Operation: seccomp.Equal, Value: unix.TIOCSTI}},
				}},
				Action: errno(unix.EPERM),
			},
		},
	}
}

// seccompFilter is the assembled filter, for the job to load on itself.
func seccompFilter() ([]unix.SockFilter, error) {
	p := seccompPolicy()
	insns, err := p.Assemble()
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	raw, err := bpf.Assemble(insns)
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	out := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		out[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return out, nil
}

// seccompProgram is the filter as the struct sock_filter array bwrap's
// --seccomp reads.
func seccompProgram() ([]byte, error) {
	f, err := seccompFilter()
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, 8*len(f))
	for _, r := range f {
		out = binary.NativeEndian.AppendUint16(out, r.Code)
		out = append(out, r.Jt, r.Jf)
		out = binary.NativeEndian.AppendUint32(out, r.K)
	}
	return out, nil
}
