package peer

import (
	"errors"
	"fmt"

	ma "github.com/multiformats/go-multiaddr"
)

// AddrInfo is a peer with the transport addresses it can be reached at.
type AddrInfo struct {
	ID    ID
	Addrs []ma.Multiaddr
}

// ErrNoP2pComponent is returned for an address without a trailing /p2p/<id>.
var ErrNoP2pComponent = errors.New("peer: address has no /p2p component")

// SplitAddr splits ".../p2p/<id>" into the transport part and the ID. id is
// empty when the address does not end in a /p2p component; transport is nil
// for a bare "/p2p/<id>".
func SplitAddr(a ma.Multiaddr) (transport ma.Multiaddr, id ID) {
	if len(a) == 0 {
		return nil, ""
	}
	rest, last := ma.SplitLast(a)
	if last == nil || last.Code() != ma.P_P2P {
		return a, ""
	}
	return rest, ID(last.RawValue())
}

// AddrInfoFromP2pAddr parses ".../p2p/<id>".
func AddrInfoFromP2pAddr(a ma.Multiaddr) (*AddrInfo, error) {
	transport, id := SplitAddr(a)
	if id == "" {
		return nil, fmt.Errorf("%w: %s", ErrNoP2pComponent, a)
	}
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("peer: parsing %s: %w", a, err)
	}
	info := &AddrInfo{ID: id}
	if len(transport) > 0 {
		info.Addrs = []ma.Multiaddr{transport}
	}
	return info, nil
}

// AddrInfosFromP2pAddrs groups addresses by peer, in first-seen order.
func AddrInfosFromP2pAddrs(addrs ...ma.Multiaddr) ([]AddrInfo, error) {
	var out []AddrInfo
	index := make(map[ID]int, len(addrs))
	for _, a := range addrs {
		info, err := AddrInfoFromP2pAddr(a)
		if err != nil {
			return nil, err
		}
		i, ok := index[info.ID]
		if !ok {
			i = len(out)
			index[info.ID] = i
			out = append(out, AddrInfo{ID: info.ID})
		}
		out[i].Addrs = append(out[i].Addrs, info.Addrs...)
	}
	return out, nil
}

// P2pAddrs returns every address with /p2p/<id> appended, or just "/p2p/<id>"
// when there are no addresses.
func (ai AddrInfo) P2pAddrs() ([]ma.Multiaddr, error) {
	c, err := ai.ID.Component()
	if err != nil {
		return nil, err
	}
	if len(ai.Addrs) == 0 {
		return []ma.Multiaddr{c.Multiaddr()}, nil
	}
	out := make([]ma.Multiaddr, 0, len(ai.Addrs))
	for _, a := range ai.Addrs {
		out = append(out, ma.Join(a, c))
	}
	return out, nil
}

// Component returns the /p2p/<id> multiaddr component of id.
func (id ID) Component() (*ma.Component, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	c, err := ma.NewComponent("p2p", id.String())
	if err != nil {
		return nil, fmt.Errorf("peer: building /p2p component for %s: %w", id, err)
	}
	return c, nil
}
