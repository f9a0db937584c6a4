//go:build !race

package dialing

const raceEnabled = false
