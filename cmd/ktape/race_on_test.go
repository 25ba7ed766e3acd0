//go:build race

package main

// raceEnabled: the race detector's shadow memory is resident and grows
// with what a test touches, so resident-set checks do not apply.
const raceEnabled = true
