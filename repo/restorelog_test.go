package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ktape/ktape/storage"
)

func TestOffsetMapRoundTrip(t *testing.T) {
	want := []OffsetMapEntry{
		{SourceFirst: 100, SourceLast: 199, TargetBase: 0, Records: 100},
		{SourceFirst: 250, SourceLast: 400, TargetBase: 100, Records: 7}, // compacted: gaps in source offsets
		{SourceFirst: 1 << 40, SourceLast: 1<<40 + 5, TargetBase: 500, Records: 6},
	}
	var m OffsetMap
	for _, e := range want {
		if err := m.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Add(OffsetMapEntry{SourceFirst: 10, SourceLast: 10, TargetBase: 600, Records: 1}); err == nil {
		t.Fatal("an entry going back in source offsets was accepted")
	}
	back, err := ParseOffsetMap(m.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var got []OffsetMapEntry
	back.Each(func(e OffsetMapEntry) error { got = append(got, e); return nil })
	if !reflect.DeepEqual(got, want) || back.Len() != 3 {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if n := len(m.Bytes()); n > 40 {
		t.Errorf("three entries take %d bytes", n)
	}
	for _, bad := range [][]byte{nil, []byte("KTOM\x03"), []byte("KTOM"), append(m.Bytes()[:len(m.Bytes()):len(m.Bytes())], 0x80), append(append([]byte{}, m.Bytes()...), 1, 1, 1, 0)} {
		if _, err := ParseOffsetMap(bad); err == nil {
			t.Errorf("ParseOffsetMap(%x) accepted", bad)
		}
	}
}

// A version 2 map: entries from several sources, each source's offsets
// in order on their own (a source may go back behind another's), record
// counts below the span for batches spread by key.
func TestOffsetMapV2(t *testing.T) {
	want := []OffsetMapEntry{
		{Source: 0, SourceFirst: 100, SourceLast: 199, TargetBase: 0, Records: 40},
		{Source: 0, SourceFirst: 200, SourceLast: 300, TargetBase: 40, Records: 101},
		{Source: 2, SourceFirst: 0, SourceLast: 9, TargetBase: 141, Records: 3},
		{Source: 1, SourceFirst: 5, SourceLast: 5, TargetBase: 144, Records: 1},
		{Source: 2, SourceFirst: 10, SourceLast: 19, TargetBase: 145, Records: 10},
	}
	m := NewOffsetMap(3)
	for _, e := range want {
		if err := m.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []OffsetMapEntry{
		{Source: 2, SourceFirst: 15, SourceLast: 30, TargetBase: 200, Records: 1},   // back in source 2's offsets
		{Source: 0, SourceFirst: 400, SourceLast: 401, TargetBase: 200, Records: 3}, // more records than offsets
		{Source: 0, SourceFirst: 400, SourceLast: 401, TargetBase: 150, Records: 1}, // back in target offsets
		{Source: -1, SourceFirst: 400, SourceLast: 401, TargetBase: 200, Records: 1},
	} {
		if err := m.Add(bad); err == nil {
			t.Errorf("entry %+v accepted", bad)
		}
	}
	if !bytes.HasPrefix(m.Bytes(), []byte("KTOM\x02")) || m.Version() != 2 {
		t.Fatalf("a map of three sources starts %q", m.Bytes()[:5])
	}
	back, err := ParseOffsetMap(m.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var got []OffsetMapEntry
	back.Each(func(e OffsetMapEntry) error { got = append(got, e); return nil })
	if !reflect.DeepEqual(got, want) || back.Len() != len(want) || back.Version() != 2 {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	// A version 1 map has one source.
	var v1 OffsetMap
	if err := v1.Add(OffsetMapEntry{Source: 1, SourceFirst: 0, SourceLast: 0, TargetBase: 0, Records: 1}); err == nil {
		t.Error("a version 1 map took an entry of source 1")
	}
	if m := NewOffsetMap(1); string(m.Bytes()) != "KTOM\x01" {
		t.Errorf("a map of one source is %q", m.Bytes())
	}
}

func TestRestoreLog(t *testing.T) {
	ctx := context.Background()
	_, r := plainRepo(t)
	id := "0123456789abcdef0123456789abcdef"
	if s, err := r.RestoreStart(ctx, id); s != nil || err != nil {
		t.Fatalf("a restore that never started: %v, %v", s, err)
	}
	start := &RestoreStart{ID: id, Backup: "20261122T000000Z-01234567", TargetCluster: "c", Started: time.Now().UTC().Truncate(time.Second),
		Partitions: []RestorePartition{{Topic: "t", Partition: 0, Start: 5, Sources: []SourcePartition{{Topic: "s", Partition: 0}}}}}
	if err := r.PutRestoreStart(ctx, start); err != nil {
		t.Fatal(err)
	}
	if got, err := r.RestoreStart(ctx, id); err != nil || !reflect.DeepEqual(got, start) {
		t.Fatalf("read back %+v, %v", got, err)
	}
	var m OffsetMap
	m.Add(OffsetMapEntry{SourceFirst: 0, SourceLast: 9, TargetBase: 5, Records: 10})
	key, sum, err := r.PutOffsetMap(ctx, id, "t", 0, &m)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.PutOffsetMap(ctx, id, "t", 0, &m); err != nil {
		t.Fatalf("storing the same map again: %v", err)
	}
	var other OffsetMap
	other.Add(OffsetMapEntry{SourceFirst: 0, SourceLast: 8, TargetBase: 5, Records: 9})
	if _, _, err := r.PutOffsetMap(ctx, id, "t", 0, &other); err == nil {
		t.Fatal("a different map replaced a stored one")
	}
	back, err := r.OffsetMap(ctx, key)
	if err != nil || !bytes.Equal(back.Bytes(), m.Bytes()) || len(sum) != 64 {
		t.Fatalf("map read back: %v", err)
	}
	if d, err := r.RestoreDone(ctx, id); d != nil || err != nil {
		t.Fatalf("unfinished restore reads as done: %v %v", d, err)
	}
	done := &RestoreDone{ID: id, Finished: start.Started, Partitions: []RestoredPartition{{Topic: "t", Start: 5, End: 15, Batches: 1, Map: key, SHA256: sum}}}
	if err := r.PutRestoreDone(ctx, done); err != nil {
		t.Fatal(err)
	}
	if got, err := r.RestoreDone(ctx, id); err != nil || !reflect.DeepEqual(got, done) {
		t.Fatalf("done read back %+v, %v", got, err)
	}
	if _, err := r.RestoreStart(ctx, "../x"); err == nil {
		t.Fatal("a malformed restore id was accepted")
	}
}

func FuzzParseOffsetMap(f *testing.F) {
	var m OffsetMap
	m.Add(OffsetMapEntry{SourceFirst: 3, SourceLast: 9, TargetBase: 0, Records: 4})
	m.Add(OffsetMapEntry{SourceFirst: 12, SourceLast: 300, TargetBase: 4, Records: 200})
	f.Add(m.Bytes())
	f.Add([]byte("KTOM\x01"))
	v2 := NewOffsetMap(4)
	v2.Add(OffsetMapEntry{Source: 3, SourceFirst: 7, SourceLast: 90, TargetBase: 0, Records: 5})
	v2.Add(OffsetMapEntry{Source: 0, SourceFirst: 0, SourceLast: 3, TargetBase: 5, Records: 4})
	v2.Add(OffsetMapEntry{Source: 3, SourceFirst: 91, SourceLast: 91, TargetBase: 9, Records: 1})
	f.Add(v2.Bytes())
	f.Add([]byte("KTOM\x02"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseOffsetMap(b)
		if err != nil {
			return
		}
		// What parses re-encodes to a map that parses to the same
		// entries (varints may be longer than needed in b).
		again, err := ParseOffsetMap(m.Bytes())
		if err != nil || again.Len() != m.Len() || !bytes.Equal(again.Bytes(), m.Bytes()) {
			t.Fatalf("re-encoded %x does not parse back the same: %v", m.Bytes(), err)
		}
	})
}

// A target partition's completion record: read back as written, in a
// plain and an encrypted repository (where the stored object is sealed);
// the same record written again is no error, another one is; a record
// that contradicts itself is not written, and one stored with an unknown
// or repeated field, a field name in another case, or naming another
// partition than its key is refused, naming the key.
func TestRestorePart(t *testing.T) {
	ctx := context.Background()
	id := "0123456789abcdef0123456789abcdef"
	good := func() *RestorePart {
		return &RestorePart{ID: id, Topic: "t.x", Partition: 3, Start: 5, End: 25, Batches: 2, Map: OffsetMapKey(id, "t.x", 3),
			SHA256: strings.Repeat("ab", 32), Offsets: []TranslatedOffset{{Source: 0, Target: 5}, {Source: 40, Target: 25}}}
	}
	plainSt, plain := plainRepo(t)
	cryptSt, _, _, sealed := cryptRepo(t)
	for _, tc := range []struct {
		name string
		st   *storage.Store
		r    *Repository
	}{{"plain", plainSt, plain}, {"encrypted", cryptSt, sealed}} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.r
			if p, err := r.RestorePart(ctx, id, "t.x", 3); p != nil || err != nil {
				t.Fatalf("a partition not complete: %v, %v", p, err)
			}
			if err := r.PutRestorePart(ctx, good()); err != nil {
				t.Fatal(err)
			}
			if err := r.PutRestorePart(ctx, good()); err != nil {
				t.Fatalf("the same record again: %v", err)
			}
			other := good()
			other.End = 26
			if err := r.PutRestorePart(ctx, other); err == nil || !strings.Contains(err.Error(), "other contents") {
				t.Fatalf("another record over the first: %v", err)
			}
			got, err := r.RestorePart(ctx, id, "t.x", 3)
			if err != nil || !reflect.DeepEqual(got, good()) {
				t.Fatalf("read back %+v, %v", got, err)
			}
			raw, err := tc.st.Get(ctx, RestorePartKey(id, "t.x", 3))
			if err != nil {
				t.Fatal(err)
			}
			if isSealed := !bytes.Contains(raw, []byte(`"sha256"`)); isSealed != r.Encrypted() {
				t.Fatalf("stored as %q", raw[:min(len(raw), 40)])
			}
		})
	}
	for _, bad := range []func(p *RestorePart){
		func(p *RestorePart) { p.End = 4 },
		func(p *RestorePart) { p.Batches = 21 },
		func(p *RestorePart) { p.Map = OffsetMapKey(id, "t.x", 4) },
		func(p *RestorePart) { p.SHA256 = "abc" },
		func(p *RestorePart) { p.Offsets[1].Target = 26 },
		func(p *RestorePart) { p.Offsets[1].Source = 0 },
	} {
		p := good()
		p.Partition = 7
		p.Map = OffsetMapKey(id, "t.x", 7)
		bad(p)
		if err := plain.PutRestorePart(ctx, p); err == nil || !strings.Contains(err.Error(), RestorePartKey(id, "t.x", 7)) {
			t.Errorf("record %+v written: %v", p, err)
		}
	}
	b, err := json.Marshal(good())
	if err != nil {
		t.Fatal(err)
	}
	for i, doc := range []string{
		string(b), // the control: read without error
		strings.Replace(string(b), `"batches"`, `"extra":1,"batches"`, 1),
		strings.Replace(string(b), `"batches"`, `"Batches"`, 1),
		strings.Replace(string(b), `"batches":2`, `"batches":2,"batches":3`, 1),
		strings.Replace(string(b), `"partition":3`, `"partition":4`, 1),
	} {
		topic := fmt.Sprint("u", i)
		key := RestorePartKey(id, topic, 3)
		doc = strings.Replace(doc, `"topic":"t.x"`, `"topic":"`+topic+`"`, 1)
		doc = strings.Replace(doc, OffsetMapKey(id, "t.x", 3), OffsetMapKey(id, topic, 3), 1)
		if err := plainSt.Create(ctx, key, []byte(doc)); err != nil {
			t.Fatal(err)
		}
		p, err := plain.RestorePart(ctx, id, topic, 3)
		if i == 0 {
			if err != nil || p == nil {
				t.Fatalf("%s: the control record: %v", key, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: %s read as %+v, %v", key, doc, p, err)
		}
	}
}

// A restore's done record that contradicts itself, or names another
// restore, is not written and not read: it would let a restore be taken
// as finished on a target it does not describe.
func TestRestoreDoneRefused(t *testing.T) {
	ctx := context.Background()
	st, r := plainRepo(t)
	id := "0123456789abcdef0123456789abcdef"
	good := func() *RestoreDone {
		return &RestoreDone{ID: id, Partitions: []RestoredPartition{
			{Topic: "t", Partition: 0, Start: 5, End: 15, Batches: 1, Map: OffsetMapKey(id, "t", 0), SHA256: strings.Repeat("0f", 32)},
			{Topic: "t", Partition: 1, Start: 0, End: 0, Batches: 0, Map: OffsetMapKey(id, "t", 1), SHA256: strings.Repeat("0f", 32)},
		}}
	}
	for i, bad := range []func(d *RestoreDone){
		func(d *RestoreDone) { d.ID = "x" },
		func(d *RestoreDone) { d.Partitions[1].Partition = 0; d.Partitions[1].Map = d.Partitions[0].Map },
		func(d *RestoreDone) { d.Partitions[0].End = 4 },
		func(d *RestoreDone) { d.Partitions[0].Batches = 11 },
		func(d *RestoreDone) { d.Partitions[1].Map = d.Partitions[0].Map },
		func(d *RestoreDone) { d.Partitions[0].SHA256 = "ABC" },
	} {
		d := good()
		bad(d)
		if err := r.PutRestoreDone(ctx, d); err == nil {
			t.Errorf("case %d: record %+v written", i, d)
		}
		// Stored by something else, it is refused on reading, naming
		// the object.
		b, _ := json.Marshal(d)
		key := restoreKey(id, "done.json")
		st.Delete(ctx, key)
		if err := st.Create(ctx, key, b); err != nil {
			t.Fatal(err)
		}
		if got, err := r.RestoreDone(ctx, id); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("case %d: %s read as %+v, %v", i, b, got, err)
		}
	}
	st.Delete(ctx, restoreKey(id, "done.json"))
	if err := r.PutRestoreDone(ctx, good()); err != nil {
		t.Fatalf("the control record: %v", err)
	}
	if got, err := r.RestoreDone(ctx, id); err != nil || !reflect.DeepEqual(got, good()) {
		t.Fatalf("the control record read back %+v, %v", got, err)
	}
}

// FuzzRestoreRecords stores arbitrary bytes as each record of a
// restore's log and reads them back: whatever is stored, the reader
// returns a record that passes its own checks, or an error naming the
// object, and never panics.
func FuzzRestoreRecords(f *testing.F) {
	id := "0123456789abcdef0123456789abcdef"
	start, _ := json.Marshal(&RestoreStart{ID: id, Backup: "20261122T000000Z-01234567", TargetCluster: "c",
		Partitions: []RestorePartition{{Topic: "t", Partition: 0, Start: 5, Sources: []SourcePartition{{Topic: "s", Partition: 0}}}}})
	part, _ := json.Marshal(&RestorePart{ID: id, Topic: "t", Partition: 0, Start: 5, End: 25, Batches: 2, Map: OffsetMapKey(id, "t", 0),
		SHA256: strings.Repeat("ab", 32), Offsets: []TranslatedOffset{{Source: 0, Target: 5}, {Source: 40, Target: 25}}})
	done, _ := json.Marshal(&RestoreDone{ID: id, Partitions: []RestoredPartition{{Topic: "t", Start: 5, End: 25, Batches: 2,
		Map: OffsetMapKey(id, "t", 0), SHA256: strings.Repeat("ab", 32)}}, Groups: []Group{{Group: "g", Offsets: []GroupOffset{{Topic: "t", Offset: 7}}}}})
	for kind, seed := range [][]byte{start, part, done} {
		f.Add(uint8(kind), seed)
	}
	f.Add(uint8(1), []byte(`{"id":"0123456789abcdef0123456789abcdef","topic":"t","partition":0,"offsets":[{"source":1e400}]}`))
	f.Add(uint8(2), []byte(`{"partitions":[null,{}]}`))
	ctx := context.Background()
	st, r := plainRepo(f)
	f.Fuzz(func(t *testing.T, kind uint8, b []byte) {
		keys := []string{restoreKey(id, "start.json"), RestorePartKey(id, "t", 0), restoreKey(id, "done.json")}
		key := keys[int(kind)%len(keys)]
		st.Delete(ctx, key)
		if err := st.Create(ctx, key, b); err != nil {
			t.Fatal(err)
		}
		var err error
		switch int(kind) % len(keys) {
		case 0:
			var s *RestoreStart
			if s, err = r.RestoreStart(ctx, id); err == nil && (s == nil || s.ID != id) {
				t.Fatalf("%q read as %+v", b, s)
			}
		case 1:
			var p *RestorePart
			if p, err = r.RestorePart(ctx, id, "t", 0); err == nil && (p == nil || p.check() != nil || p.Topic != "t" || p.Partition != 0) {
				t.Fatalf("%q read as %+v", b, p)
			}
		case 2:
			var d *RestoreDone
			if d, err = r.RestoreDone(ctx, id); err == nil && (d == nil || d.ID != id || d.check() != nil) {
				t.Fatalf("%q read as %+v", b, d)
			}
		}
		if err != nil && !strings.Contains(err.Error(), key) {
			t.Fatalf("%q: the error does not name %s: %v", b, key, err)
		}
	})
}
