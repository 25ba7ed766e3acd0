package restore

import (
	"context"
	"fmt"
	"math"
	"sort"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/repo"
)

// Preview is what a restore would do, for --dry-run: nothing is written.
type Preview struct {
	Backup string         `json:"backup"`
	Topics []PreviewTopic `json:"topics"`
	// Groups are the backed-up groups whose offsets would be translated
	// (committed with Options.Groups), by their name on the target.
	Groups []string `json:"groups,omitempty"`
	// GroupsNotTranslated are offsets of selected groups on partitions
	// merged or spread by key, which would not be committed
	// (Stats.GroupsNotTranslated).
	GroupsNotTranslated []string `json:"groups_not_translated,omitempty"`
}

// PreviewTopic is one topic of a Preview.
type PreviewTopic struct {
	Source string `json:"source"`
	Target string `json:"target"`
	// Create is set when the target topic does not exist and would be
	// created with Partitions partitions.
	Create     bool `json:"create"`
	Partitions int  `json:"partitions"`
	// PartitionMap is the partition map that applies (as
	// ParsePartitionMap reads it), if any; ByKey is set when records are
	// spread by key over partitions 0..ByKey-1.
	PartitionMap string             `json:"partition_map,omitempty"`
	ByKey        int32              `json:"by_key,omitempty"`
	Restored     []PreviewPartition `json:"restored"`
}

// PreviewPartition is one restored partition: its source offsets, the
// timestamps of the backed-up batches in that range, and their bytes
// (batches of segments overlapping the range: an upper bound when a
// window cuts through them).
type PreviewPartition struct {
	Partition int32 `json:"partition"`
	// Target is the target partition, -1 when records are spread by key.
	Target      int32  `json:"target_partition"`
	FirstOffset int64  `json:"first_offset"`
	LastOffset  int64  `json:"last_offset"`
	FirstTime   int64  `json:"first_time_ms"`
	MaxTime     int64  `json:"max_time_ms"`
	Bytes       uint64 `json:"bytes"`
}

// PreviewRestore previews the restore of m into c with opts, reading the target's
// metadata but writing nothing.
func PreviewRestore(ctx context.Context, c *client.Client, m *repo.Manifest, opts Options) (*Preview, error) {
	targets, err := Plan(m, opts)
	if err != nil {
		return nil, err
	}
	pv := &Preview{Backup: m.ID}
	byDest := map[string]*PreviewTopic{}
	var names []string
	for i := range targets {
		t := &targets[i]
		pt := byDest[t.Dest.Topic]
		if pt == nil {
			pt = &PreviewTopic{Source: t.Source.Topic, Target: t.Dest.Topic, Partitions: int(t.create), ByKey: t.Hash}
			if pm := partitionMap(opts.PartitionMap, t.Source.Topic); pm != nil {
				pt.PartitionMap = pm.String()
			}
			byDest[t.Dest.Topic] = pt
			names = append(names, t.Dest.Topic)
		}
		pp := PreviewPartition{Partition: t.Source.Partition, Target: t.Dest.Partition, FirstOffset: t.window.first, LastOffset: t.window.last, FirstTime: math.MaxInt64, MaxTime: math.MinInt64}
		for _, s := range t.Backup.Segments {
			if s.LastOffset < pp.FirstOffset || s.BaseOffset > pp.LastOffset {
				continue
			}
			pp.Bytes += s.DataBytes
			pp.FirstTime, pp.MaxTime = min(pp.FirstTime, s.FirstTime), max(pp.MaxTime, s.MaxTime)
		}
		if pp.Bytes == 0 {
			pp.FirstTime, pp.MaxTime = -1, -1
		}
		pt.Restored = append(pt.Restored, pp)
	}
	md, err := c.RefreshMetadata(ctx, names)
	if err != nil {
		return nil, fmt.Errorf("restore: metadata: %w", err)
	}
	sort.Strings(names)
	for _, n := range names {
		pt := byDest[n]
		if tm := md.Topics[n]; tm == nil || tm.Err != nil {
			pt.Create = true
		} else {
			pt.Partitions = len(tm.Partitions)
		}
		pv.Topics = append(pv.Topics, *pt)
	}
	ok := exact(targets)
	for _, g := range m.Groups {
		for _, o := range g.Offsets {
			if ok[client.TopicPartition{Topic: o.Topic, Partition: o.Partition}] && selectedGroup(opts, g.Group) {
				pv.Groups = append(pv.Groups, rename(opts.GroupRemap, g.Group))
				break
			}
		}
	}
	pv.GroupsNotTranslated = untranslated(m, targets, opts)
	return pv, nil
}
