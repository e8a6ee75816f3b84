package wasm

import (
	"errors"
	"fmt"
)

// Why this file exists: with the store limiter, a memory.grow past
// Limits.MemoryBytes returns -1 and execution goes on. Wasmtime has a
// StoreLimits option to trap instead (trap_on_grow_failure), but the C
// API behind wasmtime-go v39 does not expose it (wasmtime_store_limiter
// takes only the five sizes), nor a custom ResourceLimiter. So the module
// is rewritten before compiling: every memory.grow becomes a call to an
// appended function that does the memory.grow and executes unreachable
// if it returned -1. Run reports an unreachable trap whose innermost frame
// is that function as Meter "memory". It also fires when growth exceeds
// the memory's own declared maximum: either way the module asked for more
// memory than it may have.
//
// The decoder below knows the instruction set of the proposals the
// engine enables (MVP, sign extension, saturating conversions, bulk
// memory, reference types, multi-value, tail calls); newConfig turns off
// the rest (SIMD, threads, GC, function references, multi-memory,
// memory64), so an instruction it cannot decode is refused, never passed
// through unguarded. The original module is validated by wasmtime first,
// so the decoder only has to be right about valid input.

var errTruncated = errors.New("truncated module")

type reader struct {
	b   []byte
	off int
}

func (r *reader) byte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, errTruncated
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

// uleb reads an unsigned LEB128 of at most 64 bits.
func (r *reader) uleb() (uint64, error) {
	var v uint64
	for shift := 0; shift < 70; shift += 7 {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, errors.New("LEB128 too long")
}

// skipLEB skips a signed or unsigned LEB128.
func (r *reader) skipLEB() error {
	for i := 0; i < 10; i++ {
		c, err := r.byte()
		if err != nil {
			return err
		}
		if c&0x80 == 0 {
			return nil
		}
	}
	return errors.New("LEB128 too long")
}

func (r *reader) skip(n uint64) error {
	if n > uint64(len(r.b)-r.off) {
		return errTruncated
	}
	r.off += int(n)
	return nil
}

func appendULEB(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

type section struct {
	id      byte
	payload []byte
}

// guardMemoryGrow returns code with every memory.grow guarded, and the
// index of the guard function; or code unchanged and -1 when it has no
// memory.grow.
func guardMemoryGrow(code []byte) ([]byte, int32, error) {
	if len(code) < 8 {
		return nil, -1, errTruncated
	}
	r := &reader{b: code, off: 8}
	var secs []section
	typeSec, importSec, funcSec, codeSec := -1, -1, -1, -1
	for r.off < len(r.b) {
		id, err := r.byte()
		if err != nil {
			return nil, -1, err
		}
		n, err := r.uleb()
		if err != nil {
			return nil, -1, err
		}
		start := r.off
		if err := r.skip(n); err != nil {
			return nil, -1, err
		}
		switch id {
		case 1:
			typeSec = len(secs)
		case 2:
			importSec = len(secs)
		case 3:
			funcSec = len(secs)
		case 10:
			codeSec = len(secs)
		}
		secs = append(secs, section{id, r.b[start:r.off]})
	}
	if codeSec < 0 {
		return code, -1, nil
	}
	if typeSec < 0 || funcSec < 0 {
		return nil, -1, errors.New("code section without type or function section")
	}
	imported := uint64(0)
	if importSec >= 0 {
		var err error
		if imported, err = countFuncImports(secs[importSec].payload); err != nil {
			return nil, -1, fmt.Errorf("import section: %w", err)
		}
	}
	fr := &reader{b: secs[funcSec].payload}
	defined, err := fr.uleb()
	if err != nil {
		return nil, -1, err
	}
	guard := imported + defined
	if guard > 1<<31-1 {
		return nil, -1, errors.New("too many functions")
	}
	newCode, found, err := rewriteCode(secs[codeSec].payload, guard)
	if err != nil {
		return nil, -1, fmt.Errorf("code section: %w", err)
	}
	if !found {
		return code, -1, nil
	}
	tr := &reader{b: secs[typeSec].payload}
	ntypes, err := tr.uleb()
	if err != nil {
		return nil, -1, err
	}
	// (func (param i32) (result i32))
	secs[typeSec].payload = append(appendULEB(nil, ntypes+1), append(tr.b[tr.off:len(tr.b):len(tr.b)], 0x60, 1, 0x7f, 1, 0x7f)...)
	secs[funcSec].payload = appendULEB(append(appendULEB(nil, defined+1), fr.b[fr.off:]...), ntypes)
	secs[codeSec].payload = newCode

	out := append([]byte(nil), code[:8]...)
	for _, s := range secs {
		out = append(out, s.id)
		out = appendULEB(out, uint64(len(s.payload)))
		out = append(out, s.payload...)
	}
	return out, int32(guard), nil
}

// guardBody is the appended function's body:
//
//	(local.get 0) (memory.grow) (local.tee 0)
//	(if (i32.eq (i32.const -1)) (then unreachable)) (local.get 0)
var guardBody = []byte{
	0x00,       // no locals besides the param
	0x20, 0x00, // local.get 0
	0x40, 0x00, // memory.grow 0
	0x22, 0x00, // local.tee 0
	0x41, 0x7f, // i32.const -1
	0x46,       // i32.eq
	0x04, 0x40, // if (empty block type)
	0x00,       // unreachable
	0x0b,       // end
	0x20, 0x00, // local.get 0
	0x0b, // end
}

func countFuncImports(b []byte) (uint64, error) {
	r := &reader{b: b}
	n, err := r.uleb()
	if err != nil {
		return 0, err
	}
	var funcs uint64
	for range n {
		for range 2 { // module and field names
			l, err := r.uleb()
			if err != nil {
				return 0, err
			}
			if err := r.skip(l); err != nil {
				return 0, err
			}
		}
		kind, err := r.byte()
		if err != nil {
			return 0, err
		}
		switch kind {
		case 0x00: // func: type index
			funcs++
			err = r.skipLEB()
		case 0x01: // table: reftype, limits
			if _, err = r.byte(); err == nil {
				err = skipLimits(r)
			}
		case 0x02: // memory: limits
			err = skipLimits(r)
		case 0x03: // global: valtype, mutability
			err = r.skip(2)
		case 0x04: // tag: attribute, type index
			if _, err = r.byte(); err == nil {
				err = r.skipLEB()
			}
		default:
			return 0, fmt.Errorf("unknown import kind 0x%02x", kind)
		}
		if err != nil {
			return 0, err
		}
	}
	return funcs, nil
}

func skipLimits(r *reader) error {
	flags, err := r.byte()
	if err != nil {
		return err
	}
	if err := r.skipLEB(); err != nil { // min
		return err
	}
	if flags&0x01 != 0 { // max
		if err := r.skipLEB(); err != nil {
			return err
		}
	}
	if flags&0x08 != 0 { // custom page size
		return r.skipLEB()
	}
	return nil
}

// rewriteCode re-encodes the code section with memory.grow replaced by
// call guard, and the guard's body appended.
func rewriteCode(b []byte, guard uint64) ([]byte, bool, error) {
	r := &reader{b: b}
	n, err := r.uleb()
	if err != nil {
		return nil, false, err
	}
	out := appendULEB(make([]byte, 0, len(b)+64), n+1)
	found := false
	var body []byte
	for i := range n {
		size, err := r.uleb()
		if err != nil {
			return nil, false, err
		}
		start := r.off
		if err := r.skip(size); err != nil {
			return nil, false, err
		}
		body, err = rewriteBody(body[:0], r.b[start:r.off], guard, &found)
		if err != nil {
			return nil, false, fmt.Errorf("function %d: %w", i, err)
		}
		out = appendULEB(out, uint64(len(body)))
		out = append(out, body...)
	}
	if r.off != len(b) {
		return nil, false, errors.New("trailing bytes")
	}
	out = appendULEB(out, uint64(len(guardBody)))
	out = append(out, guardBody...)
	return out, found, nil
}

func rewriteBody(out, b []byte, guard uint64, found *bool) ([]byte, error) {
	r := &reader{b: b}
	ndecl, err := r.uleb()
	if err != nil {
		return nil, err
	}
	for range ndecl {
		if err := r.skipLEB(); err != nil { // count
			return nil, err
		}
		if err := r.skip(1); err != nil { // valtype
			return nil, err
		}
	}
	out = append(out, b[:r.off]...)
	for r.off < len(b) {
		start := r.off
		op, _ := r.byte()
		if op == 0x40 { // memory.grow memidx
			if err := r.skipLEB(); err != nil {
				return nil, err
			}
			out = appendULEB(append(out, 0x10), guard) // call guard
			*found = true
			continue
		}
		if err := skipImmediates(r, op); err != nil {
			return nil, fmt.Errorf("at byte %d: %w", start, err)
		}
		out = append(out, b[start:r.off]...)
	}
	return out, nil
}

// skipImmediates consumes the immediates of op, refusing any opcode
// outside the enabled proposals.
func skipImmediates(r *reader, op byte) error {
	switch {
	case op == 0x00 || op == 0x01 || op == 0x05 || op == 0x0b || op == 0x0f ||
		op == 0x1a || op == 0x1b || op == 0xd1 ||
		0x45 <= op && op <= 0xc4:
		return nil // no immediates
	case op == 0x02 || op == 0x03 || op == 0x04: // block type (s33)
		return r.skipLEB()
	case op == 0x0c || op == 0x0d || op == 0x10 || op == 0x12 ||
		0x20 <= op && op <= 0x26 || op == 0xd2 || op == 0x3f:
		return r.skipLEB() // one index
	case op == 0x0e: // br_table
		n, err := r.uleb()
		if err != nil {
			return err
		}
		for range n + 1 {
			if err := r.skipLEB(); err != nil {
				return err
			}
		}
		return nil
	case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect
		if err := r.skipLEB(); err != nil {
			return err
		}
		return r.skipLEB()
	case op == 0x1c: // select t*
		n, err := r.uleb()
		if err != nil {
			return err
		}
		return r.skip(n)
	case 0x28 <= op && op <= 0x3e: // memarg
		align, err := r.uleb()
		if err != nil {
			return err
		}
		if align&0x40 != 0 { // explicit memory index
			if err := r.skipLEB(); err != nil {
				return err
			}
		}
		return r.skipLEB()
	case op == 0x41 || op == 0x42:
		return r.skipLEB()
	case op == 0x43:
		return r.skip(4)
	case op == 0x44:
		return r.skip(8)
	case op == 0xd0: // ref.null heaptype
		return r.skipLEB()
	case op == 0xfc:
		sub, err := r.uleb()
		if err != nil {
			return err
		}
		var imms int
		switch {
		case sub <= 7: // saturating truncation
			imms = 0
		case sub == 9 || sub == 11 || sub == 13 || 15 <= sub && sub <= 17:
			imms = 1 // data.drop, memory.fill, elem.drop, table.grow/size/fill
		case sub == 8 || sub == 10 || sub == 12 || sub == 14:
			imms = 2 // memory.init, memory.copy, table.init, table.copy
		default:
			return fmt.Errorf("unsupported instruction 0xfc %d", sub)
		}
		for range imms {
			if err := r.skipLEB(); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unsupported instruction 0x%02x", op)
}
