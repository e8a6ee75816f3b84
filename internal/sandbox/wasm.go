package sandbox

import (
	"fmt"
	"time"

	"github.com/clawkeep/clawkeep/internal/sandbox/wasm"
)

// FromWASM reports a wasm run in the terms of every other level, so the
// kernel and the CLI map meters to outcomes in one place. deadline is the
// run's wall-clock limit, for the reason text.
func FromWASM(r *wasm.Result, deadline time.Duration) *Report {
	rep := &Report{
		Level: LevelWASM, Outcome: Exited, ExitCode: r.ExitCode,
		WallMS: r.Wall.Milliseconds(), Stdout: r.Stdout, Stderr: r.Stderr,
		Truncated: r.OutputTruncated, NetworkRefusals: r.NetworkRefusals,
	}
	switch r.Meter {
	case wasm.MeterNone:
		return rep
	case wasm.MeterFuel:
		rep.Meter, rep.Reason = MeterFuel, fmt.Sprintf("instruction budget exhausted after %d units of fuel", r.FuelUsed)
	case wasm.MeterEpoch:
		rep.Meter, rep.Reason = MeterWall, fmt.Sprintf("wall-clock limit of %s reached", deadline)
	case wasm.MeterMemory:
		rep.Meter, rep.Reason = MeterMemory, "memory limit reached: "+r.Trap
	default:
		rep.Reason = "trap: " + r.Trap
	}
	rep.Outcome, rep.ExitCode, rep.Hit = Killed, -1, nil
	if rep.Meter != "" {
		rep.Hit = []Meter{rep.Meter}
	}
	return rep
}
