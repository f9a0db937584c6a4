package main

import (
	"sort"

	"github.com/libp2p/go-libp2p/core/event"
)

// identifyInfo is what the remote peer told us in identify. Slices are never
// nil so that they encode as [] rather than null.
type identifyInfo struct {
	AgentVersion    string   `json:"agentVersion"`
	Protocols       []string `json:"protocols"`
	ProtocolVersion string   `json:"protocolVersion"`
	ListenAddrs     []string `json:"listenAddrs"`
	ObservedAddr    string   `json:"observedAddr"`
}

func identifyFromEvent(e event.EvtPeerIdentificationCompleted) identifyInfo {
	info := identifyInfo{
		AgentVersion:    e.AgentVersion,
		ProtocolVersion: e.ProtocolVersion,
		Protocols:       make([]string, 0, len(e.Protocols)),
		ListenAddrs:     make([]string, 0, len(e.ListenAddrs)),
	}
	for _, p := range e.Protocols {
		info.Protocols = append(info.Protocols, string(p))
	}
	sort.Strings(info.Protocols)
	for _, a := range e.ListenAddrs {
		info.ListenAddrs = append(info.ListenAddrs, a.String())
	}
	if e.ObservedAddr != nil {
		info.ObservedAddr = e.ObservedAddr.String()
	}
	return info
}
