//go:build race

package egress

// raceEnabled is a test knob: the race detector changes allocation counts.
const raceEnabled = true
