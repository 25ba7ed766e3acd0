package api

import "github.com/ktape/ktape/protocol"

// All lists every API ktape declares, by ascending key.
var All = []*protocol.API{
	Fetch,
}

var byKey = func() map[int16]*protocol.API {
	m := make(map[int16]*protocol.API, len(All))
	for _, a := range All {
		m[a.Key] = a
	}
	return m
}()

// ByKey returns the API with the given key, or nil if ktape does not know it.
func ByKey(key int16) *protocol.API { return byKey[key] }
