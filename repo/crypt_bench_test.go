package repo

import (
	"context"
	"strings"
	"testing"

	"filippo.io/age"
)

// The cost of encryption at rest, per byte: sealing a 16 MiB segment
// (PutSegmentParts on a local disk, SHA-256 of the sealed object
// included) against storing it plain, and reading it back by 4 MiB
// ranges, decrypted or not.
func BenchmarkSegmentCrypt(b *testing.B) {
	ctx := context.Background()
	const size, rangeLen = 16 << 20, 4 << 20
	plain := make([]byte, size)
	for i := range plain {
		plain[i] = byte(i * 7)
	}
	for _, encrypted := range []bool{false, true} {
		name := "plain"
		if encrypted {
			name = "age"
		}
		st, owner, _, w := cryptRepo(b)
		r := w
		if !encrypted {
			var err error
			if r, err = Open(ctx, must(storageOpen(b)), true); err != nil {
				b.Fatal(err)
			}
		} else {
			r = must(OpenKeys(ctx, st, false, &Keys{Identities: []age.Identity{owner}}))
		}
		newSeg := func(base int64) *Segment {
			s := &Segment{StoredLen: size, DataLen: size, Entries: []IndexEntry{{BaseOffset: base, LastOffset: base, FrameLen: size, Length: size, Magic: 2}}}
			if !encrypted {
				s.Hash([][]byte{plain})
			}
			return s
		}
		b.Run("put/"+name, func(b *testing.B) {
			b.SetBytes(size)
			for i := 0; b.Loop(); i++ {
				plain[0] = byte(i) // a new segment each time
				if _, err := r.PutSegmentParts(ctx, "t", strings.Repeat("0", 32), 0, [][]byte{plain}, newSeg(int64(i))); err != nil {
					b.Fatal(err)
				}
			}
		})
		ref, err := r.PutSegmentParts(ctx, "t", strings.Repeat("0", 32), 1, [][]byte{plain}, newSeg(0))
		if err != nil {
			b.Fatal(err)
		}
		seg := newSeg(0)
		seg.SealedLen = ref.SealedBytes
		buf := make([]byte, 0, rangeLen+ReadSlack)
		b.Run("range/"+name, func(b *testing.B) {
			b.SetBytes(rangeLen)
			for i := 0; b.Loop(); i++ {
				pos := int64(i%(size/rangeLen)) * rangeLen
				var err error
				if encrypted {
					_, err = r.readSealedRange(ctx, ref, pos, rangeLen, buf)
				} else {
					_, err = r.st.ReadRange(ctx, ref.Key, pos, rangeLen, buf)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
