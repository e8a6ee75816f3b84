package wasm

import (
	"encoding/binary"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// WASI errno values used below (wasi_snapshot_preview1).
const (
	errnoFault  = 21
	errnoInval  = 28
	errnoNotSup = 58
)

// definePoll replaces WASI's poll_oneoff. wasmtime's sleeps in the host,
// where epoch interruption cannot reach, so a module could sleep past its
// deadline and ignore a cancel while holding a lane. This one sleeps in
// Go until the earliest clock timeout or the end of the run's context,
// whichever is first; in the second case the module traps (Meter "epoch").
//
// Descriptor subscriptions are reported ready at once: the only
// descriptors a module has are files (always ready, as in wasmtime) and
// stdio pipes that the host fills or drains without waiting on the module.
// Absolute timeouts are supported on the realtime clock only.
func definePoll(lk *wasmtime.Linker) error {
	lk.AllowShadowing(true)
	defer lk.AllowShadowing(false)
	i32 := wasmtime.NewValType(wasmtime.KindI32)
	ty := wasmtime.NewFuncType([]*wasmtime.ValType{i32, i32, i32, i32}, []*wasmtime.ValType{i32})
	return lk.FuncNew("wasi_snapshot_preview1", "poll_oneoff", ty, pollOneoff)
}

const (
	subSize   = 48
	eventSize = 32

	eventClock   = 0
	eventFdRead  = 1
	eventFdWrite = 2

	clockRealtime = 0
	subAbstime    = 1
)

func pollOneoff(caller *wasmtime.Caller, args []wasmtime.Val) ([]wasmtime.Val, *wasmtime.Trap) {
	ret := func(errno int32) ([]wasmtime.Val, *wasmtime.Trap) {
		return []wasmtime.Val{wasmtime.ValI32(errno)}, nil
	}
	rs, ok := caller.Data().(*runState)
	if !ok {
		return nil, wasmtime.NewTrap("wasm: internal error: store without run state")
	}
	in, out := uint64(uint32(args[0].I32())), uint64(uint32(args[1].I32()))
	n, neventsPtr := uint64(uint32(args[2].I32())), uint64(uint32(args[3].I32()))
	if n == 0 {
		return ret(errnoInval)
	}
	ext := caller.GetExport("memory")
	if ext == nil || ext.Memory() == nil {
		return ret(errnoFault)
	}
	mem := ext.Memory()
	size := uint64(mem.DataSize(caller))
	// n < 2^32, so none of these sums overflow.
	if in+n*subSize > size || out+n*eventSize > size || neventsPtr+4 > size {
		return ret(errnoFault)
	}
	data := mem.UnsafeData(caller)
	type ready struct {
		userdata uint64
		typ      byte
	}
	var fds []ready
	var clockUser uint64
	var wait time.Duration
	haveClock := false
	for i := range n {
		s := data[in+i*subSize : in+(i+1)*subSize]
		user := binary.LittleEndian.Uint64(s[0:])
		switch tag := s[8]; tag {
		case eventClock:
			id := binary.LittleEndian.Uint32(s[16:])
			timeout := binary.LittleEndian.Uint64(s[24:])
			flags := binary.LittleEndian.Uint16(s[40:])
			var d time.Duration
			if flags&subAbstime != 0 {
				if id != clockRealtime {
					return ret(errnoNotSup)
				}
				d = time.Until(time.Unix(0, int64(min(timeout, 1<<63-1))))
			} else {
				d = time.Duration(min(timeout, 1<<63-1))
			}
			if !haveClock || d < wait {
				haveClock, wait, clockUser = true, d, user
			}
		case eventFdRead, eventFdWrite:
			fds = append(fds, ready{user, tag})
		default:
			return ret(errnoInval)
		}
	}
	var events []ready
	if len(fds) > 0 {
		events = fds
	} else {
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-rs.ctx.Done():
				t.Stop()
				rs.interrupted.Store(true)
				return nil, wasmtime.NewTrap("interrupted in poll_oneoff: " + rs.ctx.Err().Error())
			}
		}
		events = []ready{{clockUser, eventClock}}
	}
	data = mem.UnsafeData(caller)
	for i, ev := range events {
		e := data[out+uint64(i)*eventSize : out+uint64(i+1)*eventSize]
		clear(e)
		binary.LittleEndian.PutUint64(e[0:], ev.userdata)
		e[10] = ev.typ
	}
	binary.LittleEndian.PutUint32(data[neventsPtr:], uint32(len(events)))
	return ret(0)
}
