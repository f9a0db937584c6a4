//go:build !race

package holepunch

const raceEnabled = false
