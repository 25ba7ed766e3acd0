package demo

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/internal/crosscheck"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
	"github.com/twmb/franz-go/pkg/kgo"
)

// check compares the backup m, stored in st, with the cluster (read by
// franz-go through cl) and with the sample as it was written:
//
//   - the manifest names exactly the sample's topics, each with its
//     partitions and the configs set on it;
//   - each partition's range is the cluster's whole log: it starts at the
//     log start the cluster reports and ends at its high watermark (the
//     cluster was not written during the backup, so nothing may be
//     missing at either end);
//   - every record in every range, decoded by franz-go from the
//     repository, equals the cluster's (crosscheck.Backup);
//   - the counts add up: the data records compared are those acknowledged
//     less those deleted, and the markers those the transactions wrote;
//   - the manifest's consumer-group offsets are exactly those committed.
//
// The first failure is returned, naming where it is.
func check(ctx context.Context, cl *kgo.Client, st *storage.Store, m *repo.Manifest, smp *sample) (CheckSummary, error) {
	var cs CheckSummary
	cc := crosscheck.NewCluster(cl)
	var names []string
	for _, t := range m.Topics {
		names = append(names, t.Name)
	}
	if want := slices.Sorted(maps.Keys(smp.topics)); !slices.Equal(names, want) {
		return cs, fmt.Errorf("the backup has topics %v, the cluster %v", names, want)
	}
	for i := range m.Topics {
		t := &m.Topics[i]
		if len(t.Partitions) != int(smp.topics[t.Name]) || t.PartitionsCount != int(smp.topics[t.Name]) {
			return cs, fmt.Errorf("%s: the backup has %d partitions (of %d), the topic %d", t.Name, len(t.Partitions), t.PartitionsCount, smp.topics[t.Name])
		}
		if !maps.Equal(t.Configs, smp.configs[t.Name]) {
			return cs, fmt.Errorf("%s: the backup has topic configs %v, the topic was created with %v", t.Name, t.Configs, smp.configs[t.Name])
		}
		cs.TopicConfigs += len(t.Configs)
		ct, err := cc.Topic(ctx, t.Name)
		if err != nil {
			return cs, err
		}
		offsets, err := cc.Offsets(ctx, ct, false)
		if err != nil {
			return cs, err
		}
		for _, p := range t.Partitions {
			o, ok := offsets[p.Partition]
			switch {
			case !ok:
				return cs, fmt.Errorf("%s/%d: in the backup, not in the cluster", t.Name, p.Partition)
			case p.LogStart != o.LogStart || p.From != o.LogStart:
				return cs, fmt.Errorf("%s/%d: the backup starts at %d (log start %d), the cluster's log at %d", t.Name, p.Partition, p.From, p.LogStart, o.LogStart)
			case p.To != o.End:
				return cs, fmt.Errorf("%s/%d: the backup ends at %d, the cluster's log at %d (its high watermark)", t.Name, p.Partition, p.To, o.End)
			}
		}
	}

	res, err := crosscheck.Backup(ctx, cc, st, m)
	if err != nil {
		return cs, err
	}
	cs.Partitions, cs.Records, cs.Markers = res.Partitions, res.Records, res.Control
	if want := smp.records - smp.deleted; res.Records != want {
		return cs, fmt.Errorf("%d data records compared; %d were acknowledged and %d deleted, so %d were expected", res.Records, smp.records, smp.deleted, want)
	}
	if res.Control != smp.markers {
		return cs, fmt.Errorf("%d transaction markers compared; the transactions wrote %d", res.Control, smp.markers)
	}

	n, err := checkGroups(m.Groups, smp.groups)
	cs.GroupOffsets = n
	return cs, err
}

// checkGroups compares the groups recorded in a manifest with those
// committed, and returns how many offsets matched.
func checkGroups(got []repo.Group, want map[string]map[client.TopicPartition]client.GroupOffset) (int, error) {
	n := 0
	seen := map[string]bool{}
	for _, g := range got {
		w, ok := want[g.Group]
		if !ok {
			return n, fmt.Errorf("group %s: in the backup, but the demo committed no offsets for it", g.Group)
		}
		seen[g.Group] = true
		if len(g.Offsets) != len(w) {
			return n, fmt.Errorf("group %s: %d offsets in the backup, %d committed", g.Group, len(g.Offsets), len(w))
		}
		for _, o := range g.Offsets {
			tp := client.TopicPartition{Topic: o.Topic, Partition: o.Partition}
			c, ok := w[tp]
			switch {
			case !ok:
				return n, fmt.Errorf("group %s: %s: offset %d in the backup, none committed", g.Group, tp, o.Offset)
			case o.Offset != c.Offset || o.Metadata != c.Metadata:
				return n, fmt.Errorf("group %s: %s: offset %d (metadata %q) in the backup, %d (%q) committed", g.Group, tp, o.Offset, o.Metadata, c.Offset, c.Metadata)
			}
			n++
		}
	}
	for _, g := range slices.Sorted(maps.Keys(want)) {
		if !seen[g] {
			return n, fmt.Errorf("group %s: committed offsets, but the backup has none", g)
		}
	}
	return n, nil
}
