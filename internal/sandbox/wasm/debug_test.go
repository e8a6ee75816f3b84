package wasm

import (
	"fmt"
	"testing"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

func TestDebugFuel(t *testing.T) {
	for _, variant := range []int{0, 1, 2, 3} {
		cfg := wasmtime.NewConfig()
		if variant >= 1 {
			cfg = newConfig(false)
		}
		eng := wasmtime.NewEngineWithConfig(cfg)
		cfg2 := newConfig(false)
		_ = cfg2
		code := wat(t, spinWAT)
		m, _ := wasmtime.NewModule(eng, code)
		st := wasmtime.NewStore(eng)
		st.SetFuel(1000)
		st.SetEpochDeadline(1000)
		var inst *wasmtime.Instance
		var err error
		if variant >= 2 {
			lk := wasmtime.NewLinker(eng)
			lk.DefineWasi()
			if variant == 3 {
				st.SetWasi(wasmtime.NewWasiConfig())
			}
			inst, err = lk.Instantiate(st, m)
		} else {
			inst, err = wasmtime.NewInstance(st, m, nil)
		}
		_, err = inst.GetFunc(st, "spin").Call(st)
		fmt.Printf("variant %d %T\n", variant, err)
	}
}
