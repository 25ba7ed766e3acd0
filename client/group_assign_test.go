package client

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Unit tests of the ktape-sticky assignor and its two byte formats.

func tps(topic string, parts ...int32) []TopicPartition {
	out := make([]TopicPartition, len(parts))
	for i, p := range parts {
		out[i] = TopicPartition{topic, p}
	}
	return out
}

func seq(topic string, from, to int32) []TopicPartition {
	var out []TopicPartition
	for p := from; p < to; p++ {
		out = append(out, TopicPartition{topic, p})
	}
	return out
}

// checkBalanced fails unless every item went to exactly one member, no
// member got anything else, every member has an entry, and counts differ
// by at most one.
func checkBalanced(t *testing.T, items []TopicPartition, members []memberClaim, got map[string][]TopicPartition) {
	t.Helper()
	if len(got) != len(members) {
		t.Fatalf("%d members assigned, want %d: %v", len(got), len(members), got)
	}
	owner := map[TopicPartition]string{}
	lo, hi := len(items)+1, -1
	for _, m := range members {
		its, ok := got[m.ID]
		if !ok {
			t.Fatalf("member %s has no entry", m.ID)
		}
		if !slices.IsSortedFunc(its, compareItems) {
			t.Fatalf("member %s: items not sorted: %v", m.ID, its)
		}
		lo, hi = min(lo, len(its)), max(hi, len(its))
		for _, tp := range its {
			if o, dup := owner[tp]; dup {
				t.Fatalf("%s assigned to both %s and %s", tp, o, m.ID)
			}
			owner[tp] = m.ID
		}
	}
	want := sortItems(slices.Clone(items))
	if len(owner) != len(want) {
		t.Fatalf("%d items assigned, want %d", len(owner), len(want))
	}
	for _, tp := range want {
		if _, ok := owner[tp]; !ok {
			t.Fatalf("%s assigned to nobody", tp)
		}
	}
	if len(members) > 0 && hi-lo > 1 {
		t.Fatalf("unbalanced: counts from %d to %d: %v", lo, hi, got)
	}
}

func fresh(ids ...string) []memberClaim {
	var ms []memberClaim
	for _, id := range ids {
		ms = append(ms, memberClaim{ID: id, groupMetadata: groupMetadata{Generation: -1}})
	}
	return ms
}

func TestAssignStickyBalance(t *testing.T) {
	for _, tc := range []struct {
		items, members int
	}{{0, 1}, {0, 3}, {1, 1}, {1, 5}, {3, 7}, {7, 3}, {12, 4}, {100, 7}, {5, 5}} {
		t.Run(fmt.Sprintf("%d items %d members", tc.items, tc.members), func(t *testing.T) {
			items := seq("t", 0, int32(tc.items))
			var ids []string
			for i := range tc.members {
				ids = append(ids, fmt.Sprintf("m%02d", i))
			}
			checkBalanced(t, items, fresh(ids...), assignSticky(items, fresh(ids...)))
		})
	}
	if got := assignSticky(seq("t", 0, 3), nil); len(got) != 0 {
		t.Fatalf("no members: %v", got)
	}
}

// TestAssignStickyKeepsClaims: a fourth member joins three that own four
// items each; each keeps three of its four and the newcomer gets the
// three given up. Then one leaves: the others keep all theirs and split
// its items.
func TestAssignStickyKeepsClaims(t *testing.T) {
	items := seq("t", 0, 12)
	ms := []memberClaim{
		{"a", groupMetadata{5, seq("t", 0, 4)}},
		{"b", groupMetadata{5, seq("t", 4, 8)}},
		{"c", groupMetadata{5, seq("t", 8, 12)}},
		{"d", groupMetadata{-1, nil}},
	}
	got := assignSticky(items, ms)
	checkBalanced(t, items, ms, got)
	for _, m := range ms[:3] {
		if len(got[m.ID]) != 3 || !subset(got[m.ID], m.Owned) {
			t.Fatalf("%s owned %v, got %v: want 3 of its own", m.ID, m.Owned, got[m.ID])
		}
	}
	// c leaves.
	next := []memberClaim{
		{"a", groupMetadata{6, got["a"]}},
		{"b", groupMetadata{6, got["b"]}},
		{"d", groupMetadata{6, got["d"]}},
	}
	got2 := assignSticky(items, next)
	checkBalanced(t, items, next, got2)
	for _, m := range next {
		if !subset(m.Owned, got2[m.ID]) {
			t.Fatalf("%s owned %v, got %v: lost some", m.ID, m.Owned, got2[m.ID])
		}
	}
}

func subset(a, b []TopicPartition) bool {
	for _, tp := range a {
		if !slices.Contains(b, tp) {
			return false
		}
	}
	return true
}

// TestAssignStickyDeterministic: the same inputs in any order give the
// same assignment (every member's leader must agree, and maps must not
// leak their order).
func TestAssignStickyDeterministic(t *testing.T) {
	items := append(seq("a", 0, 9), seq("b", 0, 8)...)
	ms := []memberClaim{
		{"m1", groupMetadata{3, append(seq("a", 0, 6), seq("b", 0, 2)...)}},
		{"m2", groupMetadata{3, seq("b", 2, 8)}},
		{"m3", groupMetadata{2, seq("a", 3, 9)}},
		{"m4", groupMetadata{-1, nil}},
		{"m5", groupMetadata{1, seq("zzz", 0, 3)}},
	}
	want := assignSticky(items, ms)
	checkBalanced(t, items, ms, want)
	r := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		is, mm := slices.Clone(items), slices.Clone(ms)
		r.Shuffle(len(is), func(i, j int) { is[i], is[j] = is[j], is[i] })
		r.Shuffle(len(mm), func(i, j int) { mm[i], mm[j] = mm[j], mm[i] })
		if got := assignSticky(is, mm); !reflect.DeepEqual(got, want) {
			t.Fatalf("order changed the result:\n%v\n%v", got, want)
		}
	}
}

// TestAssignStickyConflicts: two members claiming one item: the newer
// generation's claim wins; on a tie, the smaller member id.
func TestAssignStickyConflicts(t *testing.T) {
	items := tps("t", 0, 1)
	ms := []memberClaim{
		{"a", groupMetadata{4, tps("t", 0)}},
		{"b", groupMetadata{7, tps("t", 0)}},
	}
	got := assignSticky(items, ms)
	checkBalanced(t, items, ms, got)
	if !slices.Equal(got["b"], tps("t", 0)) {
		t.Fatalf("newer claim lost: %v", got)
	}
	ms[1].Generation = 4
	got = assignSticky(items, ms)
	if !slices.Equal(got["a"], tps("t", 0)) {
		t.Fatalf("tie not to the smaller id: %v", got)
	}
}

// TestAssignStickyUnknownItems: claims on items no longer shared (a
// topic gone, a partition removed) are dropped, never assigned.
func TestAssignStickyUnknownItems(t *testing.T) {
	items := tps("t", 0, 1, 2, 3)
	ms := []memberClaim{
		{"a", groupMetadata{2, append(tps("gone", 0, 1, 2), tps("t", 0, 9)...)}},
		{"b", groupMetadata{2, tps("t", 1, 2, 3)}},
	}
	got := assignSticky(items, ms)
	checkBalanced(t, items, ms, got)
	if !slices.Contains(got["a"], TopicPartition{"t", 0}) || len(got["a"]) != 2 {
		t.Fatalf("a: %v", got["a"])
	}
	if !subset(got["b"], tps("t", 1, 2, 3)) {
		t.Fatalf("b: %v", got["b"])
	}
}

// TestAssignStickyMoreMembersThanItems: those with claims keep theirs,
// the rest get nothing but still an (empty) entry.
func TestAssignStickyMoreMembersThanItems(t *testing.T) {
	items := tps("t", 0, 1)
	ms := append(fresh("a", "b", "c"), memberClaim{"z", groupMetadata{3, tps("t", 1)}})
	got := assignSticky(items, ms)
	checkBalanced(t, items, ms, got)
	if !slices.Equal(got["z"], tps("t", 1)) || !slices.Equal(got["a"], tps("t", 0)) {
		t.Fatalf("%v", got)
	}
}

func TestGroupFormatsRoundTrip(t *testing.T) {
	items := append(append(tps("a", 0, 1, 2, 300, 1<<31-1), tps("b", 7)...), tps(strings.Repeat("x", 249), 0)...)
	for _, md := range []groupMetadata{{-1, nil}, {0, nil}, {1 << 30, items}, {-7, tps("é", 3)}} {
		got, err := decodeGroupMetadata(encodeGroupMetadata(md))
		if err != nil || got.Generation != md.Generation || !slices.Equal(got.Owned, md.Owned) {
			t.Fatalf("metadata %+v: got %+v, %v", md, got, err)
		}
	}
	for _, a := range []groupAssignment{{1, nil, nil}, {3, []byte("run-1"), items}, {1 << 20, bytes.Repeat([]byte{0}, 300), tps("t", 0)}} {
		got, err := decodeGroupAssignment(encodeGroupAssignment(a))
		if err != nil || got.Members != a.Members || !bytes.Equal(got.Shared, a.Shared) || !slices.Equal(got.Items, a.Items) {
			t.Fatalf("assignment %+v: got %+v, %v", a, got, err)
		}
	}
	// Topic names are written once, however many partitions.
	if n := len(encodeGroupMetadata(groupMetadata{1, seq("a-rather-long-topic-name", 0, 100)})); n > 5+1+25+1+100 {
		t.Fatalf("100 partitions of one topic took %d bytes", n)
	}
}

// TestGroupFormatsBadInput: truncated, foreign or hostile bytes get an
// error saying what and where, never a panic.
func TestGroupFormatsBadInput(t *testing.T) {
	good := encodeGroupMetadata(groupMetadata{3, tps("t", 1, 2)})
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"version", []byte{1, 0, 0, 0, 0, 0}, "version 1"},
		{"consumer protocol", []byte{0, 3, 0, 0, 0, 1}, "1 topics at byte 5"}, // ConsumerMemberMetadata v3 starts 0,3
		{"short generation", []byte{0, 0, 0}, "too short"},
		{"truncated", good[:len(good)-1], "2 partitions at byte 8, with 1 bytes left"},
		{"truncated varint", []byte{0, 0, 0, 0, 1, 1, 1, 't', 1, 0x80}, "partition at byte 9: bad varint"},
		{"left over", append(slices.Clone(good), 0), "left over"},
		{"huge topic count", append([]byte{0, 0, 0, 0, 1}, 0xff, 0xff, 0xff, 0xff, 0x0f), "topics at byte 5"},
		{"huge partition count", []byte{0, 0, 0, 0, 1, 1, 1, 't', 0xff, 0xff, 0x03, 0}, "partitions at byte 8"},
		{"empty name", []byte{0, 0, 0, 0, 1, 1, 0, 1, 0}, "name length 0"},
		{"partition out of range", []byte{0, 0, 0, 0, 1, 1, 1, 't', 1, 0x80, 0x80, 0x80, 0x80, 0x08}, "out of range"},
		{"repeated partition", []byte{0, 0, 0, 0, 1, 1, 1, 't', 2, 4, 4}, "out of order or repeated"},
		{"repeated topic", []byte{0, 0, 0, 0, 1, 2, 1, 't', 1, 0, 1, 't', 1, 1}, "out of order or repeated"},
		{"bad utf8", []byte{0, 0, 0, 0, 1, 1, 1, 0xff, 1, 0}, "not UTF-8"},
		{"bad varint", []byte{0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "bad varint"},
	} {
		_, err := decodeGroupMetadata(tc.b)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "ktape-sticky metadata") {
			t.Errorf("metadata %s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"version", []byte{9}, "version 9"},
		{"no members", []byte{0, 0, 0, 0}, "0 members"},
		{"shared too long", []byte{0, 1, 5, 'a', 'b', 0}, "only 3 bytes left"},
		{"truncated", []byte{0, 1, 0}, "truncated"},
		{"left over", []byte{0, 1, 0, 0, 7}, "left over"},
	} {
		_, err := decodeGroupAssignment(tc.b)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "ktape-sticky assignment") {
			t.Errorf("assignment %s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

// FuzzGroupMetadata: any bytes decode to an error or to metadata that
// encodes and decodes back to itself, with items valid and sorted.
func FuzzGroupMetadata(f *testing.F) {
	f.Add(encodeGroupMetadata(groupMetadata{-1, nil}))
	f.Add(encodeGroupMetadata(groupMetadata{42, append(tps("a", 0, 5, 9), tps("b", 1)...)}))
	f.Add([]byte{0, 0, 0, 0, 1, 1, 1, 't', 2, 4, 4})
	f.Add([]byte{0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		md, err := decodeGroupMetadata(b)
		if err != nil {
			return
		}
		checkItems(t, md.Owned)
		again, err := decodeGroupMetadata(encodeGroupMetadata(md))
		if err != nil || again.Generation != md.Generation || !slices.Equal(again.Owned, md.Owned) {
			t.Fatalf("re-encoding %+v: %+v, %v", md, again, err)
		}
	})
}

// FuzzGroupAssignment is FuzzGroupMetadata for assignments.
func FuzzGroupAssignment(f *testing.F) {
	f.Add(encodeGroupAssignment(groupAssignment{1, nil, nil}))
	f.Add(encodeGroupAssignment(groupAssignment{3, []byte("run-7"), append(tps("a", 0, 5, 9), tps("b", 1)...)}))
	f.Add([]byte{0, 1, 5, 'a', 'b', 0})
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decodeGroupAssignment(b)
		if err != nil {
			return
		}
		checkItems(t, a.Items)
		again, err := decodeGroupAssignment(encodeGroupAssignment(a))
		if err != nil || again.Members != a.Members || !bytes.Equal(again.Shared, a.Shared) || !slices.Equal(again.Items, a.Items) {
			t.Fatalf("re-encoding %+v: %+v, %v", a, again, err)
		}
	})
}

func checkItems(t *testing.T, items []TopicPartition) {
	t.Helper()
	for i, tp := range items {
		if err := validItem(tp); err != nil {
			t.Fatal(err)
		}
		if i > 0 && compareItems(items[i-1], tp) >= 0 {
			t.Fatalf("items out of order: %v", items)
		}
	}
}
