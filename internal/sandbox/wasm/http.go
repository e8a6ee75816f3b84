package wasm

import (
	"errors"
	"fmt"
	"math"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/clawkeep/clawkeep/internal/egress"
)

// Results of clawkeep.http_get besides a byte count.
const (
	httpRefused  = -1 // the egress guard refused, or the run has no HTTP client
	httpFailed   = -2 // any other request error
	httpBadInput = -3 // pointers outside memory, no exported memory, URL too long
)

// maxURLBytes bounds the URL a module may pass, before it is copied out.
const maxURLBytes = 8 << 10

// defineHTTP adds
//
//	(import "clawkeep" "http_get" (func (param i32 i32 i32 i32) (result i32)))
//
// to lk: (url_ptr, url_len, buf_ptr, buf_cap) -> body bytes written into
// buf (the body is truncated to buf_cap), or a negative code above. A
// module that does not import it is unaffected.
func defineHTTP(lk *wasmtime.Linker) error {
	i32 := wasmtime.NewValType(wasmtime.KindI32)
	ty := wasmtime.NewFuncType([]*wasmtime.ValType{i32, i32, i32, i32}, []*wasmtime.ValType{i32})
	if err := lk.FuncNew("clawkeep", "http_get", ty, httpGet); err != nil {
		return fmt.Errorf("wasm: defining clawkeep.http_get: %w", err)
	}
	return nil
}

func httpGet(caller *wasmtime.Caller, args []wasmtime.Val) ([]wasmtime.Val, *wasmtime.Trap) {
	ret := func(n int32) ([]wasmtime.Val, *wasmtime.Trap) {
		return []wasmtime.Val{wasmtime.ValI32(n)}, nil
	}
	rs, ok := caller.Data().(*runState)
	if !ok {
		return nil, wasmtime.NewTrap("wasm: internal error: store without run state")
	}
	urlPtr, urlLen := uint64(uint32(args[0].I32())), uint64(uint32(args[1].I32()))
	bufPtr, bufCap := uint64(uint32(args[2].I32())), uint64(uint32(args[3].I32()))
	ext := caller.GetExport("memory")
	if ext == nil || ext.Memory() == nil {
		return ret(httpBadInput)
	}
	mem := ext.Memory()
	size := uint64(mem.DataSize(caller))
	// uint64 sums of two uint32 values cannot overflow.
	if urlLen > maxURLBytes || urlPtr+urlLen > size || bufPtr+bufCap > size {
		return ret(httpBadInput)
	}
	url := string(mem.UnsafeData(caller)[urlPtr : urlPtr+urlLen]) // copied out before any call
	if rs.http == nil {
		rs.refuse("egress: blocked: this run has no network access")
		return ret(httpRefused)
	}
	resp, err := rs.http.Do(rs.ctx, "GET", url, nil)
	if err != nil {
		if errors.Is(err, egress.ErrBlocked) {
			rs.refuse(err.Error())
			return ret(httpRefused)
		}
		return ret(httpFailed)
	}
	body := resp.Body
	if uint64(len(body)) > bufCap {
		body = body[:bufCap]
	}
	if len(body) > math.MaxInt32 {
		body = body[:math.MaxInt32] // the count must stay positive
	}
	// Fetch the memory again: nothing should have moved it during the
	// request, but a slice from before a host call is not worth trusting.
	data := mem.UnsafeData(caller)
	if bufPtr+uint64(len(body)) > uint64(len(data)) {
		return ret(httpBadInput)
	}
	copy(data[bufPtr:], body)
	return ret(int32(len(body)))
}

func (rs *runState) refuse(reason string) {
	rs.mu.Lock()
	rs.refusals = append(rs.refusals, reason)
	rs.mu.Unlock()
}
