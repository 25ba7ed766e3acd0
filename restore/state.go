package restore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/repo"
)

// partState is one target partition's progress.
type partState struct {
	dest client.TopicPartition
	// sources are the partitions restored into dest, in the order they
	// are written (their index is an offset map entry's Source); hash is
	// set when their records are spread over the topic's partitions by
	// key, so that dest gets some of each.
	sources []*Target
	hash    bool
	// start is the target offset of the restore's first record; done the
	// records of the restore the target already held when this run began.
	start, done int64
	// walked counts the records of the restore passed so far (sent, or
	// found already in the target), batches their batches.
	walked, batches int64
	m               *repo.OffsetMap
	// active: this run restores the partition. A job spreading a topic by
	// key walks every source for all the topic's partitions, and sends
	// only to the active ones (the others are another run's, or done).
	active bool
	// acks counts the partition's batches sent and not yet answered;
	// failed is set when one of them failed.
	acks   sync.WaitGroup
	failed atomic.Bool
	// pending are the source's committed group offsets not yet
	// translated, ascending; translated maps each to its target offset.
	pending    []int64
	translated map[int64]int64
}

// restoreID names a restore by what it does: the same backup into the
// same cluster, the same partitions to the same places, the same window.
// Running it again is resuming it. The target topics are named by their
// ids too, where the cluster has them (Kafka 2.8 and later): a topic
// deleted and created again since is a new restore, not one found done
// or half done.
func restoreID(m *repo.Manifest, cluster string, targets []Target, topicIDs map[string][16]byte) string {
	type part struct {
		Source, Dest          string
		First, Last, From, To int64
		// Spread by key over Hash partitions, in batches of at most
		// HashBatch bytes of records: the batches a target partition
		// gets depend on both.
		Hash      int32 `json:",omitempty"`
		HashBatch int   `json:",omitempty"`
	}
	key := struct {
		Backup, Cluster string
		Parts           []part
		TopicIDs        map[string]string `json:",omitempty"`
	}{Backup: m.ID, Cluster: cluster}
	for _, t := range targets {
		w := t.window
		pt := part{Source: t.Source.String(), Dest: t.Dest.String(), First: w.first, Last: w.last, From: w.from, To: w.to}
		if t.Hash > 0 {
			pt.Hash, pt.HashBatch = t.Hash, keyBatchBytes
		}
		key.Parts = append(key.Parts, pt)
		if id := topicIDs[t.Dest.Topic]; id != ([16]byte{}) {
			if key.TopicIDs == nil {
				key.TopicIDs = map[string]string{}
			}
			key.TopicIDs[t.Dest.Topic] = hex.EncodeToString(id[:])
		}
	}
	b, _ := json.Marshal(key)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:16])
}

// begin records a new restore's start: the end offset of every target
// partition, refusing partitions that hold records unless allowed.
func begin(ctx context.Context, c *client.Client, r *repo.Repository, m *repo.Manifest, id, cluster string, parts []*partState, opts Options) (*repo.RestoreStart, error) {
	ds := make([]client.TopicPartition, len(parts))
	for i, ps := range parts {
		ds[i] = ps.dest
	}
	if err := checkEmpty(ctx, c, ds, opts); err != nil {
		return nil, err
	}
	ends, err := endOffsets(ctx, c, ds)
	if err != nil {
		return nil, err
	}
	s := &repo.RestoreStart{ID: id, Backup: m.ID, TargetCluster: cluster, Started: time.Now().UTC().Truncate(time.Millisecond)}
	for _, ps := range parts {
		s.Partitions = append(s.Partitions, repo.RestorePartition{Topic: ps.dest.Topic, Partition: ps.dest.Partition, Start: ends[ps.dest],
			Sources: ps.sourceList()})
	}
	if err := r.PutRestoreStart(ctx, s); err != nil {
		return nil, fmt.Errorf("restore: record the start: %w", err)
	}
	return s, nil
}

// sourceList names ps's sources, in order, as the restore log does.
func (ps *partState) sourceList() []repo.SourcePartition {
	out := make([]repo.SourcePartition, len(ps.sources))
	for i, t := range ps.sources {
		out[i] = repo.SourcePartition{Topic: t.Source.Topic, Partition: t.Source.Partition}
	}
	return out
}

// checkStart checks that the restore log's start record lists every
// target partition of the plan with its sources, and sets each
// partition's start offset from it.
func checkStart(s *repo.RestoreStart, parts []*partState) error {
	starts := map[client.TopicPartition]*repo.RestorePartition{}
	for i := range s.Partitions {
		p := &s.Partitions[i]
		starts[client.TopicPartition{Topic: p.Topic, Partition: p.Partition}] = p
	}
	for _, ps := range parts {
		rp, ok := starts[ps.dest]
		if !ok || len(s.Partitions) != len(parts) || !slices.Equal(rp.Sources, ps.sourceList()) {
			return fmt.Errorf("restore: the log of restore %s does not list %s with its sources: it was not written by this version's plan", s.ID, ps.dest)
		}
		ps.start = rp.Start
	}
	return nil
}

// resumeFrom works out, for each target partition, how much of the
// restore it already holds: its end offset now less its end offset when
// the restore first started. The producer is idempotent and sends each
// partition's batches in order, so what a killed restore left is a prefix
// of what it was writing. With settled, the end offsets are read until
// they stay the same (see settle): needed whenever another run may have
// written the partitions before.
func resumeFrom(ctx context.Context, c *client.Client, parts []*partState, settled bool) error {
	if len(parts) == 0 {
		return nil
	}
	ds := make([]client.TopicPartition, len(parts))
	for i, ps := range parts {
		ds[i] = ps.dest
	}
	list := endOffsets
	if settled {
		list = settledEnds
	}
	ends, err := list(ctx, c, ds)
	if err != nil {
		return err
	}
	for _, ps := range parts {
		ps.done = ends[ps.dest] - ps.start
		if ps.done < 0 {
			return fmt.Errorf("restore: %s ends at offset %d, before where this restore started writing it (%d): the topic was deleted or truncated since; restore elsewhere", ps.dest, ends[ps.dest], ps.start)
		}
	}
	return nil
}

// settle is how long the end offsets of a resumed restore's targets must
// stay the same before they are trusted: a produce request the killed run
// had fully sent is still appended by the broker after the run is gone.
var settle = 500 * time.Millisecond

// settledEnds lists the targets' end offsets until two lists, settle
// apart, agree.
func settledEnds(ctx context.Context, c *client.Client, dests []client.TopicPartition) (map[client.TopicPartition]int64, error) {
	prev, err := endOffsets(ctx, c, dests)
	for err == nil {
		select {
		case <-time.After(settle):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		var cur map[client.TopicPartition]int64
		if cur, err = endOffsets(ctx, c, dests); err == nil && maps.Equal(cur, prev) {
			return cur, nil
		}
		prev = cur
	}
	return nil, err
}

// endOffsets lists the end offset of every target partition.
func endOffsets(ctx context.Context, c *client.Client, dests []client.TopicPartition) (map[client.TopicPartition]int64, error) {
	req := map[client.TopicPartition]int64{}
	for _, d := range dests {
		req[d] = client.Latest
	}
	res, err := c.ListOffsets(ctx, client.ReadUncommitted, req)
	if err != nil {
		return nil, fmt.Errorf("restore: list offsets: %w", err)
	}
	out := map[client.TopicPartition]int64{}
	for tp := range req {
		if err := res[tp].Err; err != nil {
			return nil, fmt.Errorf("restore: %s: end offset: %w", tp, err)
		}
		out[tp] = res[tp].Offset
	}
	return out, nil
}

// checkDone makes sure that a restore found done is still in the target:
// every partition ends at or past where the restore's records ended. A
// cluster without topic ids gives a topic created again the same restore
// id; this catches that case.
func checkDone(ctx context.Context, c *client.Client, d *repo.RestoreDone, dests []client.TopicPartition) error {
	ends, err := endOffsets(ctx, c, dests)
	if err != nil {
		return err
	}
	for _, p := range d.Partitions {
		tp := client.TopicPartition{Topic: p.Topic, Partition: p.Partition}
		if end, ok := ends[tp]; ok && end < p.End {
			return fmt.Errorf("restore: restore %s finished on %s, but %s now ends at offset %d, before the %d it left: the topic was deleted or truncated since, and this cluster has no topic ids to tell; restore into another topic (--remap)",
				d.ID, d.Finished.Format(time.RFC3339), tp, end, p.End)
		}
	}
	return nil
}

// committedOffsets are the backup's committed offsets by source
// partition, ascending, without repeats.
func committedOffsets(m *repo.Manifest) map[client.TopicPartition][]int64 {
	out := map[client.TopicPartition][]int64{}
	for _, g := range m.Groups {
		for _, o := range g.Offsets {
			tp := client.TopicPartition{Topic: o.Topic, Partition: o.Partition}
			out[tp] = append(out[tp], o.Offset)
		}
	}
	for tp, offs := range out {
		sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
		n := 0
		for i, o := range offs {
			if i == 0 || o != offs[n-1] {
				offs[n] = o
				n++
			}
		}
		out[tp] = offs[:n]
	}
	return out
}
