package api

import (
	"testing"

	"github.com/ktape/ktape/protocol"
)

// The Decoder's index holds at most protocol.IndexEntriesPerByte entries
// per byte of message for every declared API: its memory is bounded by the
// message size, whatever counts the message claims.
func TestIndexBoundedByMessageSize(t *testing.T) {
	for _, a := range All {
		for _, s := range []*protocol.Schema{a.Request, a.Response} {
			for v := a.MinVersion; v <= a.MaxVersion; v++ {
				if r := s.IndexRatio(v); r > protocol.IndexEntriesPerByte {
					t.Errorf("%s v%d: %.1f index entries per byte, over %d", s.Name(), v, r, protocol.IndexEntriesPerByte)
				}
			}
		}
	}
}
