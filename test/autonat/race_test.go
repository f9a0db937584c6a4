//go:build race

package autonat

const raceEnabled = true
