//go:build !race

package webrtcnat

const raceEnabled = false
