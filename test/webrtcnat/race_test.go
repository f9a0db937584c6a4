//go:build race

package webrtcnat

const raceEnabled = true
