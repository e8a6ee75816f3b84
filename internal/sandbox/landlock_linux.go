package sandbox

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Landlock access rights of ABI 3 (Linux 6.2): everything a job may be
// granted on a path. Rights the ruleset handles and no rule grants are
// denied everywhere.
const (
	llRead = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_READ_DIR
	llAll  = llRead | unix.LANDLOCK_ACCESS_FS_WRITE_FILE | unix.LANDLOCK_ACCESS_FS_REMOVE_DIR |
		unix.LANDLOCK_ACCESS_FS_REMOVE_FILE | unix.LANDLOCK_ACCESS_FS_MAKE_CHAR | unix.LANDLOCK_ACCESS_FS_MAKE_DIR |
		unix.LANDLOCK_ACCESS_FS_MAKE_REG | unix.LANDLOCK_ACCESS_FS_MAKE_SOCK | unix.LANDLOCK_ACCESS_FS_MAKE_FIFO |
		unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK | unix.LANDLOCK_ACCESS_FS_MAKE_SYM | unix.LANDLOCK_ACCESS_FS_REFER |
		unix.LANDLOCK_ACCESS_FS_TRUNCATE
	llFileOnly = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_READ_FILE |
		unix.LANDLOCK_ACCESS_FS_WRITE_FILE | unix.LANDLOCK_ACCESS_FS_TRUNCATE
)

// landlockABI returns the kernel's Landlock ABI version, 0 without it.
func landlockABI() int {
	v, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if errno != 0 {
		return 0
	}
	return int(v)
}

// landlockRuleset builds a ruleset granting ro (read and execute) and rw
// (everything) beneath the given paths, for the job to enforce on itself
// just before exec. Paths a host lacks are skipped.
//
// It is written on x/sys/unix rather than go-landlock: that library only
// enforces on the calling process (on kernels before Landlock ABI 8
// through libcap's psx, which walks /proc/<pid>/task and spins forever in
// a fresh PID namespace whose /proc is the host's), while here the
// enforcing happens in the job's own process, between fork and exec.
func landlockRuleset(ro, rw []string) (int, error) {
	if landlockABI() < 3 {
		return -1, fmt.Errorf("landlock: ABI 3 (Linux 6.2) or later is required")
	}
	attr := unix.LandlockRulesetAttr{Handled_access_fs: llAll}
	fd, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr), 0)
	if errno != 0 {
		return -1, fmt.Errorf("landlock: create ruleset: %w", errno)
	}
	unix.CloseOnExec(int(fd))
	add := func(path string, access uint64) error {
		f, err := os.OpenFile(path, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			if os.IsNotExist(err) {
				return nil // a system path this host lacks
			}
			return fmt.Errorf("landlock: %w", err)
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil && !fi.IsDir() {
			access &= llFileOnly
		}
		rule := unix.LandlockPathBeneathAttr{Allowed_access: access, Parent_fd: int32(f.Fd())}
		_, _, errno := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, fd, unix.LANDLOCK_RULE_PATH_BENEATH, uintptr(unsafe.Pointer(&rule)), 0, 0, 0)
		if errno != 0 {
			return fmt.Errorf("landlock: rule for %s: %w", path, errno)
		}
		return nil
	}
	rules := []struct {
		paths  []string
		access uint64
	}{
		{ro, llRead},
		{[]string{"/dev/urandom", "/dev/random"}, unix.LANDLOCK_ACCESS_FS_READ_FILE},
		{[]string{"/dev/null", "/dev/zero", "/dev/full"}, unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE | unix.LANDLOCK_ACCESS_FS_TRUNCATE},
		{rw, llAll},
	}
	for _, r := range rules {
		for _, p := range r.paths {
			if err := add(p, r.access); err != nil {
				unix.Close(int(fd))
				return -1, err
			}
		}
	}
	return int(fd), nil
}
