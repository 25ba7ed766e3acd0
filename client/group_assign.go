package client

// group_assign.go: ktape's own group protocol, "ktape-sticky": what a member
// tells the leader when it joins (the items it owned in its last
// generation), what the leader sends back (the run's shared bytes and the
// member's items), and the sticky assignment between the two.
//
// Both byte formats start with a version byte so that a later ktape can
// change them; both are decoded with every count checked against the bytes
// left, so a member of another version, or a hostile one, gets an error
// naming what is wrong and where, never a panic or an allocation sized by
// an untrusted count.
//
//	metadata   = version(0) generation(int32 big endian) items
//	assignment = version(0) members(uvarint) len(shared uvarint) shared items
//	items      = topics(uvarint) { len(name uvarint) name partitions(uvarint) { partition(uvarint) } }
//
// Items are grouped by topic, in topic then partition order.

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"
)

// GroupProtocol is the only protocol ktape members offer in JoinGroup.
const GroupProtocol = "ktape-sticky"

// DefaultGroupProtocolType is GroupConfig.ProtocolType's default: not
// "consumer", so that a Kafka consumer group of the same name refuses
// ktape's members (INCONSISTENT_GROUP_PROTOCOL) instead of being disturbed
// by them, and the other way round.
const DefaultGroupProtocolType = "ktape"

const (
	groupMetadataVersion   = 0
	groupAssignmentVersion = 0
)

// groupMetadata is what a member sends in JoinGroup: the items it owned and
// the generation it owned them in (-1 when it owned none).
type groupMetadata struct {
	Generation int32
	Owned      []TopicPartition
}

func encodeGroupMetadata(md groupMetadata) []byte {
	b := []byte{groupMetadataVersion}
	b = binary.BigEndian.AppendUint32(b, uint32(md.Generation))
	return appendItems(b, md.Owned)
}

func decodeGroupMetadata(b []byte) (groupMetadata, error) {
	var md groupMetadata
	if len(b) == 0 {
		return md, errors.New("ktape-sticky metadata: empty")
	}
	if b[0] != groupMetadataVersion {
		return md, fmt.Errorf("ktape-sticky metadata: version %d; this ktape reads version %d", b[0], groupMetadataVersion)
	}
	if len(b) < 5 {
		return md, fmt.Errorf("ktape-sticky metadata: %d bytes, too short for the generation at byte 1", len(b))
	}
	md.Generation = int32(binary.BigEndian.Uint32(b[1:5]))
	items, n, err := readItems(b, 5)
	if err != nil {
		return md, fmt.Errorf("ktape-sticky metadata: %w", err)
	}
	if n != len(b) {
		return md, fmt.Errorf("ktape-sticky metadata: %d bytes left over at byte %d", len(b)-n, n)
	}
	md.Owned = items
	return md, nil
}

// groupAssignment is what the leader gives a member in SyncGroup.
type groupAssignment struct {
	Members int // in the generation; only the leader learns them from the coordinator
	Shared  []byte
	Items   []TopicPartition
}

func encodeGroupAssignment(a groupAssignment) []byte {
	b := []byte{groupAssignmentVersion}
	b = binary.AppendUvarint(b, uint64(a.Members))
	b = binary.AppendUvarint(b, uint64(len(a.Shared)))
	b = append(b, a.Shared...)
	return appendItems(b, a.Items)
}

func decodeGroupAssignment(b []byte) (groupAssignment, error) {
	var a groupAssignment
	if len(b) == 0 {
		return a, errors.New("ktape-sticky assignment: empty (the leader assigned this member nothing, not even the version)")
	}
	if b[0] != groupAssignmentVersion {
		return a, fmt.Errorf("ktape-sticky assignment: version %d; this ktape reads version %d", b[0], groupAssignmentVersion)
	}
	members, pos, err := readUvarint(b, 1, "member count")
	if err != nil {
		return a, fmt.Errorf("ktape-sticky assignment: %w", err)
	}
	if members == 0 || members > 1<<31-1 {
		return a, fmt.Errorf("ktape-sticky assignment: %d members at byte 1", members)
	}
	a.Members = int(members)
	n, pos, err := readUvarint(b, pos, "shared bytes length")
	if err != nil {
		return a, fmt.Errorf("ktape-sticky assignment: %w", err)
	}
	if n > uint64(len(b)-pos) {
		return a, fmt.Errorf("ktape-sticky assignment: shared bytes of length %d at byte %d, but only %d bytes left", n, pos, len(b)-pos)
	}
	a.Shared = append([]byte{}, b[pos:pos+int(n)]...)
	pos += int(n)
	items, end, err := readItems(b, pos)
	if err != nil {
		return a, fmt.Errorf("ktape-sticky assignment: %w", err)
	}
	if end != len(b) {
		return a, fmt.Errorf("ktape-sticky assignment: %d bytes left over at byte %d", len(b)-end, end)
	}
	a.Items = items
	return a, nil
}

// appendItems appends items, which must be sorted and free of duplicates
// (sortItems), grouped by topic.
func appendItems(b []byte, items []TopicPartition) []byte {
	var topics int
	for i := range items {
		if i == 0 || items[i].Topic != items[i-1].Topic {
			topics++
		}
	}
	b = binary.AppendUvarint(b, uint64(topics))
	for i := 0; i < len(items); {
		j := i
		for j < len(items) && items[j].Topic == items[i].Topic {
			j++
		}
		b = binary.AppendUvarint(b, uint64(len(items[i].Topic)))
		b = append(b, items[i].Topic...)
		b = binary.AppendUvarint(b, uint64(j-i))
		for _, tp := range items[i:j] {
			b = binary.AppendUvarint(b, uint64(tp.Partition))
		}
		i = j
	}
	return b
}

// readItems reads items from b at pos and returns them and the position
// after them. Every count is checked against the bytes left (each element
// takes at least one byte) before anything is allocated for it.
func readItems(b []byte, pos int) ([]TopicPartition, int, error) {
	at := pos
	topics, pos, err := readUvarint(b, pos, "topic count")
	if err != nil {
		return nil, pos, err
	}
	if topics > uint64(len(b)-pos) {
		return nil, pos, fmt.Errorf("%d topics at byte %d, but only %d bytes left", topics, at, len(b)-pos)
	}
	var items []TopicPartition
	for t := uint64(0); t < topics; t++ {
		start := pos
		var n uint64
		n, pos, err = readUvarint(b, pos, "topic name length")
		if err != nil {
			return nil, pos, err
		}
		if n == 0 || n > uint64(len(b)-pos) {
			return nil, pos, fmt.Errorf("topic %d at byte %d: name length %d, with %d bytes left", t, start, n, len(b)-pos)
		}
		name := string(b[pos : pos+int(n)])
		if !utf8.ValidString(name) {
			return nil, pos, fmt.Errorf("topic %d at byte %d: name is not UTF-8", t, start)
		}
		pos += int(n)
		if len(items) > 0 && name <= items[len(items)-1].Topic {
			return nil, pos, fmt.Errorf("topic %q at byte %d: topics out of order or repeated", name, start)
		}
		var parts uint64
		at := pos
		parts, pos, err = readUvarint(b, pos, "partition count")
		if err != nil {
			return nil, pos, err
		}
		if parts == 0 || parts > uint64(len(b)-pos) {
			return nil, pos, fmt.Errorf("topic %q: %d partitions at byte %d, with %d bytes left", name, parts, at, len(b)-pos)
		}
		for i := uint64(0); i < parts; i++ {
			at := pos
			var p uint64
			p, pos, err = readUvarint(b, pos, "partition")
			if err != nil {
				return nil, pos, err
			}
			if p > 1<<31-1 {
				return nil, pos, fmt.Errorf("topic %q: partition %d at byte %d is out of range", name, p, at)
			}
			if i > 0 && int32(p) <= items[len(items)-1].Partition {
				return nil, pos, fmt.Errorf("topic %q: partition %d at byte %d out of order or repeated", name, p, at)
			}
			items = append(items, TopicPartition{Topic: name, Partition: int32(p)})
		}
	}
	return items, pos, nil
}

func readUvarint(b []byte, pos int, what string) (uint64, int, error) {
	if pos >= len(b) {
		return 0, pos, fmt.Errorf("%s at byte %d: truncated", what, pos)
	}
	v, n := binary.Uvarint(b[pos:])
	if n <= 0 {
		return 0, pos, fmt.Errorf("%s at byte %d: bad varint", what, pos)
	}
	return v, pos + n, nil
}

func compareItems(a, b TopicPartition) int {
	return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
}

// sortItems sorts items by topic then partition and drops duplicates, in
// place.
func sortItems(items []TopicPartition) []TopicPartition {
	slices.SortFunc(items, compareItems)
	return slices.Compact(items)
}

// validItem says why an item cannot be shared in a group, or nil.
func validItem(tp TopicPartition) error {
	switch {
	case tp.Topic == "":
		return fmt.Errorf("item %s: empty topic", tp)
	case !utf8.ValidString(tp.Topic):
		return fmt.Errorf("item %q: topic is not UTF-8", tp.Topic)
	case tp.Partition < 0:
		return fmt.Errorf("item %s: negative partition", tp)
	}
	return nil
}

// memberClaim is one member as the leader sees it: its id and what it says
// it owned.
type memberClaim struct {
	ID string
	groupMetadata
}

// assignSticky shares items between members: every item goes to exactly
// one member and the members' counts differ by at most one. Items a
// member owned stay with it up to its quota; when two members claim the
// same item, the claim of the later generation wins (the other is stale),
// and between equal generations the smaller member id. Claims on items no
// longer shared are dropped. The rest go to the members furthest below
// their quota. The result depends only on the inputs, not on map order.
// Every member has an entry, possibly empty; items are sorted.
func assignSticky(items []TopicPartition, members []memberClaim) map[string][]TopicPartition {
	out := make(map[string][]TopicPartition, len(members))
	if len(members) == 0 {
		return out
	}
	items = sortItems(slices.Clone(items))
	ms := slices.Clone(members)
	slices.SortFunc(ms, func(a, b memberClaim) int { return cmp.Compare(a.ID, b.ID) })
	ms = slices.CompactFunc(ms, func(a, b memberClaim) bool { return a.ID == b.ID })

	// Who may keep each item: the newest claim, then the smallest id.
	shared := make(map[TopicPartition]bool, len(items))
	for _, tp := range items {
		shared[tp] = true
	}
	owner := map[TopicPartition]int{} // index into ms
	for i, m := range ms {
		for _, tp := range m.Owned {
			if !shared[tp] {
				continue
			}
			if j, ok := owner[tp]; !ok || m.Generation > ms[j].Generation {
				owner[tp] = i // ms is sorted by id: on a tie the earlier stays
			}
		}
	}
	claims := make([][]TopicPartition, len(ms))
	for _, tp := range items {
		if i, ok := owner[tp]; ok {
			claims[i] = append(claims[i], tp)
		}
	}

	// Quotas: everyone gets len/members, and the remainder goes one each
	// to the members with the most valid claims, so that as few claims as
	// possible are cut.
	base, extra := len(items)/len(ms), len(items)%len(ms)
	order := make([]int, len(ms))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(len(claims[b]), len(claims[a])) })
	quota := make([]int, len(ms))
	for rank, i := range order {
		quota[i] = base
		if rank < extra {
			quota[i]++
		}
	}

	got := make([][]TopicPartition, len(ms))
	taken := make(map[TopicPartition]bool, len(items))
	for i := range ms {
		keep := claims[i][:min(len(claims[i]), quota[i])]
		got[i] = append(got[i], keep...)
		for _, tp := range keep {
			taken[tp] = true
		}
	}
	// The rest, in item order, to whoever is furthest below quota (the
	// smallest id on a tie).
	for _, tp := range items {
		if taken[tp] {
			continue
		}
		best := -1
		for i := range ms {
			if len(got[i]) >= quota[i] {
				continue
			}
			if best < 0 || quota[i]-len(got[i]) > quota[best]-len(got[best]) {
				best = i
			}
		}
		got[best] = append(got[best], tp) // quotas sum to len(items): someone is below
	}
	for i, m := range ms {
		out[m.ID] = sortItems(got[i])
	}
	return out
}
