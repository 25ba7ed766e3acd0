package restore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sort"
	"time"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/repo"
)

// partState is one target partition's progress.
type partState struct {
	t *Target
	// start is the target offset of the restore's first record; done the
	// records of the restore the target already held when this run began.
	start, done int64
	// walked counts the records of the restore passed so far (sent, or
	// found already in the target), batches their batches.
	walked, batches int64
	m               repo.OffsetMap
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
	}
	key := struct {
		Backup, Cluster string
		Parts           []part
		TopicIDs        map[string]string `json:",omitempty"`
	}{Backup: m.ID, Cluster: cluster}
	for _, t := range targets {
		w := t.window
		key.Parts = append(key.Parts, part{t.Source.String(), t.Dest.String(), w.first, w.last, w.from, w.to})
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
func begin(ctx context.Context, c *client.Client, r *repo.Repository, m *repo.Manifest, id, cluster string, targets []Target, opts Options) (*repo.RestoreStart, error) {
	if err := checkEmpty(ctx, c, targets, opts); err != nil {
		return nil, err
	}
	ends, err := endOffsets(ctx, c, targets)
	if err != nil {
		return nil, err
	}
	s := &repo.RestoreStart{ID: id, Backup: m.ID, TargetCluster: cluster, Started: time.Now().UTC().Truncate(time.Millisecond)}
	for _, t := range targets {
		s.Partitions = append(s.Partitions, repo.RestorePartition{Topic: t.Dest.Topic, Partition: t.Dest.Partition, Start: ends[t.Dest],
			Sources: []repo.SourcePartition{{Topic: t.Source.Topic, Partition: t.Source.Partition}}})
	}
	if err := r.PutRestoreStart(ctx, s); err != nil {
		return nil, fmt.Errorf("restore: record the start: %w", err)
	}
	return s, nil
}

// resumeFrom works out, for each target, how much of the restore its
// partition already holds: its end offset now less its end offset when
// the restore first started. The producer is idempotent and sends each
// partition's batches in order, so what a killed restore left is a prefix
// of what it was writing.
func resumeFrom(ctx context.Context, c *client.Client, s *repo.RestoreStart, targets []Target, resumed bool) ([]*partState, error) {
	starts := map[client.TopicPartition]int64{}
	for _, p := range s.Partitions {
		starts[client.TopicPartition{Topic: p.Topic, Partition: p.Partition}] = p.Start
	}
	list := endOffsets
	if resumed {
		list = settledEnds
	}
	ends, err := list(ctx, c, targets)
	if err != nil {
		return nil, err
	}
	var out []*partState
	for i := range targets {
		t := &targets[i]
		start, ok := starts[t.Dest]
		if !ok || len(s.Partitions) != len(targets) {
			return nil, fmt.Errorf("restore: the log of restore %s does not list %s: it was not written by this version's plan", s.ID, t.Dest)
		}
		done := ends[t.Dest] - start
		if done < 0 {
			return nil, fmt.Errorf("restore: %s ends at offset %d, before where this restore started writing it (%d): the topic was deleted or truncated since; restore elsewhere", t.Dest, ends[t.Dest], start)
		}
		out = append(out, &partState{t: t, start: start, done: done})
	}
	return out, nil
}

// settle is how long the end offsets of a resumed restore's targets must
// stay the same before they are trusted: a produce request the killed run
// had fully sent is still appended by the broker after the run is gone.
var settle = 500 * time.Millisecond

// settledEnds lists the targets' end offsets until two lists, settle
// apart, agree.
func settledEnds(ctx context.Context, c *client.Client, targets []Target) (map[client.TopicPartition]int64, error) {
	prev, err := endOffsets(ctx, c, targets)
	for err == nil {
		select {
		case <-time.After(settle):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		var cur map[client.TopicPartition]int64
		if cur, err = endOffsets(ctx, c, targets); err == nil && maps.Equal(cur, prev) {
			return cur, nil
		}
		prev = cur
	}
	return nil, err
}

// endOffsets lists the end offset of every target partition.
func endOffsets(ctx context.Context, c *client.Client, targets []Target) (map[client.TopicPartition]int64, error) {
	req := map[client.TopicPartition]int64{}
	for _, t := range targets {
		req[t.Dest] = client.Latest
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
func checkDone(ctx context.Context, c *client.Client, d *repo.RestoreDone, targets []Target) error {
	ends, err := endOffsets(ctx, c, targets)
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

// finish checks that every target partition ends exactly where the
// restore's records do, stores the offset maps, translates the group
// offsets and records the restore as done.
func finish(ctx context.Context, c *client.Client, r *repo.Repository, id string, m *repo.Manifest, parts []*partState) (*repo.RestoreDone, error) {
	targets := make([]Target, len(parts))
	for i, ps := range parts {
		targets[i] = *ps.t
	}
	ends, err := endOffsets(ctx, c, targets)
	if err != nil {
		return nil, err
	}
	d := &repo.RestoreDone{ID: id, Finished: time.Now().UTC().Truncate(time.Millisecond)}
	var wrong []error
	for _, ps := range parts {
		want := ps.start + ps.walked
		if got := ends[ps.t.Dest]; got != want {
			wrong = append(wrong, fmt.Errorf("%s ends at offset %d, but the restore's records end at %d", ps.t.Dest, got, want))
			continue
		}
		key, sum, err := r.PutOffsetMap(ctx, id, ps.t.Dest.Topic, ps.t.Dest.Partition, &ps.m)
		if err != nil {
			return nil, fmt.Errorf("restore: store the offset map of %s: %w", ps.t.Dest, err)
		}
		d.Partitions = append(d.Partitions, repo.RestoredPartition{Topic: ps.t.Dest.Topic, Partition: ps.t.Dest.Partition,
			Start: ps.start, End: want, Batches: ps.batches, Map: key, SHA256: sum})
	}
	if len(wrong) > 0 {
		return nil, fmt.Errorf("restore: something else wrote into the target while restoring, so the restore is not recorded as done: %w", errors.Join(wrong...))
	}
	d.Groups = translateGroups(m, parts)
	if err := r.PutRestoreDone(ctx, d); err != nil {
		return nil, fmt.Errorf("restore: record the end: %w", err)
	}
	return d, nil
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
