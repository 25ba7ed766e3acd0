package restore

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/repo"
)

// Partition maps. Without one, source partition p of a topic is restored
// into partition p of its target topic. A PartitionMap restores a topic
// into a target topic with another partition count, in one of two ways:
//
//   - explicit: each source partition goes to a named target partition.
//     The stored batches are sent as they are (only their headers are
//     rewritten, as always). Several sources may go to one target
//     partition: they are merged, one after the other in source partition
//     order (0 wholly, then 1, ...), not interleaved.
//   - by key (Hash N): each record goes to the partition of N that Kafka's
//     default partitioner gives its key, murmur2(key) & 0x7fffffff % N; a
//     record with a null key goes to its source partition % N. Batches are
//     decoded and their records re-encoded into new batches per target
//     partition (keys, values, headers and timestamps kept, as CreateTime,
//     compressed with the source batch's codec).
//
// Either way a target partition written from several sources receives a
// sequence of batches fixed by the backup and the options alone, which is
// what keeps resuming exact: the sources of such a topic are walked in
// partition order by one goroutine, and a re-encoded batch ends at a fixed
// size (keyBatchBytes of records), at a change of codec, and at the end of
// each source partition, never on a timer.
//
// Consumer group offsets translate exactly only when a target partition
// has one source partition and the batches are sent as they are: an
// explicit one-to-one map. For merged and key-spread partitions they are
// not committed, and reported (Stats.GroupsNotTranslated).

// PartitionMap says where the partitions of the source topics whose whole
// name matches Topic are restored. Exactly one of Partitions and Hash is
// set.
type PartitionMap struct {
	Topic *regexp.Regexp
	// Partitions maps source partitions to target partitions. Every
	// backed-up partition of a matching topic must be named: none is
	// dropped silently.
	Partitions map[int32]int32
	// Hash, when above 0, spreads records over target partitions
	// 0..Hash-1 by key.
	Hash int32
}

// String is the map in the form ParsePartitionMap reads.
func (pm PartitionMap) String() string {
	if pm.Hash > 0 {
		return fmt.Sprintf("%s=hash:%d", pm.Topic, pm.Hash)
	}
	srcs := make([]int32, 0, len(pm.Partitions))
	for s := range pm.Partitions {
		srcs = append(srcs, s)
	}
	sort.Slice(srcs, func(i, j int) bool { return srcs[i] < srcs[j] })
	var b strings.Builder
	for i, s := range srcs {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d:%d", s, pm.Partitions[s])
	}
	return fmt.Sprintf("%s=%s", pm.Topic, b.String())
}

// maxHashPartitions bounds hash:N; Kafka allows no more partitions than
// this per topic in any practical setting, and the restore keeps a batch
// builder per target partition.
const maxHashPartitions = 1 << 16

// ParsePartitionMap reads a partition map: TOPIC_REGEX=hash:N, or
// TOPIC_REGEX=SRC:DST[,SRC:DST...] (orders=0:0,1:0,2:1). The error names
// the part that is wrong.
func ParsePartitionMap(spec string) (PartitionMap, error) {
	i := strings.LastIndex(spec, "=")
	if i <= 0 || i == len(spec)-1 {
		return PartitionMap{}, fmt.Errorf("want TOPIC_REGEX=hash:N or TOPIC_REGEX=SRC:DST[,SRC:DST...]")
	}
	re, err := regexp.Compile(spec[:i])
	if err != nil {
		return PartitionMap{}, fmt.Errorf("topic expression %q: %w", spec[:i], err)
	}
	pm := PartitionMap{Topic: re}
	rule := spec[i+1:]
	if n, ok := strings.CutPrefix(rule, "hash:"); ok {
		v, err := strconv.ParseInt(n, 10, 32)
		if err != nil || v < 1 || v > maxHashPartitions {
			return PartitionMap{}, fmt.Errorf("hash:%s: want a partition count from 1 to %d", n, maxHashPartitions)
		}
		pm.Hash = int32(v)
		return pm, nil
	}
	pm.Partitions = map[int32]int32{}
	for _, pair := range strings.Split(rule, ",") {
		s, d, ok := strings.Cut(pair, ":")
		src, serr := strconv.ParseInt(s, 10, 32)
		dst, derr := strconv.ParseInt(d, 10, 32)
		switch {
		case !ok || serr != nil || derr != nil || src < 0 || dst < 0:
			return PartitionMap{}, fmt.Errorf("%q: want SRC:DST, two partition numbers (0 or more), or hash:N", pair)
		case hasKey(pm.Partitions, int32(src)):
			return PartitionMap{}, fmt.Errorf("%q: source partition %d is mapped twice", pair, src)
		}
		pm.Partitions[int32(src)] = int32(dst)
	}
	return pm, nil
}

func hasKey(m map[int32]int32, k int32) bool { _, ok := m[k]; return ok }

// partitionMap returns the first map whose expression matches the whole
// of topic, or nil.
func partitionMap(maps []PartitionMap, topic string) *PartitionMap {
	for i := range maps {
		if anchored([]*regexp.Regexp{maps[i].Topic})[0].MatchString(topic) {
			return &maps[i]
		}
	}
	return nil
}

// mapTopic sets the target partition of each of the targets of topic t
// (all its partitions, in order) under pm, and the partition count its
// target topic needs and is created with.
func mapTopic(t *repo.Topic, pm *PartitionMap, targets []Target) error {
	if pm == nil {
		create := int32(t.PartitionsCount)
		for i := range targets {
			targets[i].need = targets[i].Source.Partition + 1
			create = max(create, targets[i].need)
		}
		for i := range targets {
			targets[i].create = create
		}
		return nil
	}
	if pm.Hash > 0 {
		for i := range targets {
			targets[i].Dest.Partition, targets[i].Hash = -1, pm.Hash
			targets[i].need, targets[i].create = pm.Hash, pm.Hash
		}
		return nil
	}
	has := map[int32]bool{}
	var missing []string
	create := int32(0)
	for i := range targets {
		p := targets[i].Source.Partition
		has[p] = true
		d, ok := pm.Partitions[p]
		if !ok {
			missing = append(missing, strconv.Itoa(int(p)))
			continue
		}
		targets[i].Dest.Partition, targets[i].need = d, d+1
		create = max(create, d+1)
	}
	if len(missing) > 0 {
		return fmt.Errorf("restore: the partition map %s leaves out source partitions %s of topic %s: map every backed-up partition (partitions are never dropped silently)",
			pm, strings.Join(missing, ", "), t.Name)
	}
	for s := range pm.Partitions {
		if !has[s] {
			return fmt.Errorf("restore: the partition map %s names source partition %d, which the backup of topic %s does not have", pm, s, t.Name)
		}
	}
	for i := range targets {
		targets[i].create = create
	}
	return nil
}

// job is what one worker restores at once: its sources, walked in order,
// into its target partitions. Unmapped and explicitly mapped partitions
// make a job per target partition (one source, or the sources merged into
// it); a topic spread by key is one job, with a partState per target
// partition (parts[q] for partition q).
type job struct {
	targets []*Target
	parts   []*partState
	hash    int32
}

// jobsOf groups targets into jobs and target partitions. Partitions are in
// the order of the targets that first write them, and the sources of each
// in partition order.
func jobsOf(targets []Target) ([]*job, []*partState) {
	var jobs []*job
	var parts []*partState
	byDest := map[client.TopicPartition]*job{}
	byTopic := map[string]*job{}
	for i := range targets {
		t := &targets[i]
		if t.Hash > 0 {
			j := byTopic[t.Dest.Topic]
			if j == nil {
				j = &job{hash: t.Hash}
				for q := range t.Hash {
					ps := &partState{dest: client.TopicPartition{Topic: t.Dest.Topic, Partition: q}, hash: true}
					j.parts = append(j.parts, ps)
					parts = append(parts, ps)
				}
				byTopic[t.Dest.Topic] = j
				jobs = append(jobs, j)
			}
			j.targets = append(j.targets, t)
			continue
		}
		j := byDest[t.Dest]
		if j == nil {
			ps := &partState{dest: t.Dest}
			j = &job{parts: []*partState{ps}}
			byDest[t.Dest] = j
			jobs = append(jobs, j)
			parts = append(parts, ps)
		}
		j.targets = append(j.targets, t)
	}
	for _, j := range jobs {
		sort.SliceStable(j.targets, func(a, b int) bool { return j.targets[a].Source.Partition < j.targets[b].Source.Partition })
		for _, ps := range j.parts {
			ps.sources = j.targets
			ps.m = repo.NewOffsetMap(len(j.targets))
		}
	}
	return jobs, parts
}

// dests lists the target partitions of targets, in the order of jobsOf.
func dests(targets []Target) []client.TopicPartition {
	_, parts := jobsOf(targets)
	out := make([]client.TopicPartition, len(parts))
	for i, ps := range parts {
		out[i] = ps.dest
	}
	return out
}

// exact reports, by source partition, whether the offsets of a source
// partition translate exactly: its records are sent as they were, alone,
// into one target partition.
func exact(targets []Target) map[client.TopicPartition]bool {
	jobs, _ := jobsOf(targets)
	out := map[client.TopicPartition]bool{}
	for _, j := range jobs {
		for _, t := range j.targets {
			out[t.Source] = j.hash == 0 && len(j.targets) == 1
		}
	}
	return out
}
