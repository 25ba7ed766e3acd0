package restore

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/repo"
)

// translateGroups gives every committed offset of the backup's groups on
// a restored partition its target offset: that of the first restored
// record whose source offset is at or after it, or the target's end when
// no restored record is. A consumer resuming there reads exactly the
// restored records it had not read on the source. Only partitions
// restored alone into a target partition, their batches as they were,
// translate so; offsets on the others are left out (see untranslated).
func translateGroups(m *repo.Manifest, parts []*partState) []repo.Group {
	bySource := map[client.TopicPartition]*partState{}
	for _, ps := range parts {
		if ps.translated != nil {
			bySource[ps.sources[0].Source] = ps
		}
	}
	var out []repo.Group
	for _, g := range m.Groups {
		tg := repo.Group{Group: g.Group}
		for _, o := range g.Offsets {
			ps := bySource[client.TopicPartition{Topic: o.Topic, Partition: o.Partition}]
			if ps == nil {
				continue
			}
			off, ok := ps.translated[o.Offset]
			if !ok {
				continue // cannot happen: every committed offset was walked past
			}
			tg.Offsets = append(tg.Offsets, repo.GroupOffset{Topic: ps.dest.Topic, Partition: ps.dest.Partition,
				Offset: off, LeaderEpoch: -1, Metadata: o.Metadata})
		}
		if len(tg.Offsets) > 0 {
			out = append(out, tg)
		}
	}
	return out
}

// untranslated lists the offsets of the backup's selected groups on
// restored partitions that have no exact translation (merged with other
// partitions, or spread by key), as "GROUP: TOPIC/P,P,...", one per group
// and topic, in the manifest's order.
func untranslated(m *repo.Manifest, targets []Target, opts Options) []string {
	ok := exact(targets)
	var out []string
	for _, g := range m.Groups {
		if !selectedGroup(opts, g.Group) {
			continue
		}
		var topics []string
		parts := map[string][]string{}
		for _, o := range g.Offsets {
			tp := client.TopicPartition{Topic: o.Topic, Partition: o.Partition}
			if x, restored := ok[tp]; !restored || x {
				continue
			}
			if parts[o.Topic] == nil {
				topics = append(topics, o.Topic)
			}
			parts[o.Topic] = append(parts[o.Topic], strconv.Itoa(int(o.Partition)))
		}
		for _, t := range topics {
			out = append(out, fmt.Sprintf("%s: %s/%s", g.Group, t, strings.Join(parts[t], ",")))
		}
	}
	return out
}

// commitGroups commits the translated offsets of the selected groups,
// renamed, to the target. A group with active members on the target is
// left alone (committing under a live consumer would move it behind its
// back, and the broker refuses it anyway), and so reported in the error,
// after the other groups are committed. Offsets with no exact translation
// are not committed; each is warned of and reported in st.
func commitGroups(ctx context.Context, c *client.Client, groups []repo.Group, m *repo.Manifest, targets []Target, opts Options, st *Stats) error {
	if !opts.Groups {
		return nil
	}
	st.GroupsNotTranslated = untranslated(m, targets, opts)
	for _, u := range st.GroupsNotTranslated {
		group, parts, _ := strings.Cut(u, ": ")
		opts.Log.Warn("restore: consumer group offsets not committed: the partitions were merged or spread by key, so no target offset corresponds exactly",
			"group", group, "partitions", parts)
	}
	want := map[string]repo.Group{}
	for _, g := range groups {
		if !selectedGroup(opts, g.Group) {
			continue
		}
		name := rename(opts.GroupRemap, g.Group)
		if name == "" {
			return fmt.Errorf("restore: group %q would be renamed to an empty name", g.Group)
		}
		if other, ok := want[name]; ok {
			return fmt.Errorf("restore: groups %q and %q would both be restored as %q", other.Group, g.Group, name)
		}
		want[name] = g
	}
	if len(want) == 0 {
		opts.Log.Info("restore: no consumer group offsets to commit")
		return nil
	}
	list := make([]string, 0, len(want))
	for n := range want {
		list = append(list, n)
	}
	sort.Strings(list)
	desc, err := c.DescribeGroups(ctx, list)
	if err != nil {
		return fmt.Errorf("restore: describe the target's groups: %w", err)
	}
	var problems []error
	for _, name := range list {
		d := desc[name]
		if len(d.Members) > 0 {
			problems = append(problems, fmt.Errorf("group %s has %d active members on the target (state %s): stop them and run the restore again to commit its offsets", name, len(d.Members), d.State))
			continue
		}
		offs := map[client.TopicPartition]client.GroupOffset{}
		for _, o := range want[name].Offsets {
			offs[client.TopicPartition{Topic: o.Topic, Partition: o.Partition}] = client.GroupOffset{Offset: o.Offset, LeaderEpoch: -1, Metadata: o.Metadata}
		}
		res, err := c.CommitGroupOffsets(ctx, name, offs)
		if err != nil {
			problems = append(problems, fmt.Errorf("group %s: %w", name, err))
			continue
		}
		var failed []error
		for tp, err := range res {
			if err != nil {
				failed = append(failed, fmt.Errorf("%s: %w", tp, err))
			}
		}
		if len(failed) > 0 {
			problems = append(problems, fmt.Errorf("group %s: %w", name, errors.Join(failed...)))
			continue
		}
		st.GroupsCommitted = append(st.GroupsCommitted, name)
		opts.Log.Info("restore: committed consumer group offsets", "group", name, "from", want[name].Group, "partitions", len(offs))
	}
	if len(problems) > 0 {
		return fmt.Errorf("restore: the records are restored, but not every group's offsets were committed: %w", errors.Join(problems...))
	}
	return nil
}

// selectedGroup reports whether opts select the group named g.
func selectedGroup(opts Options, g string) bool {
	return selected(g, anchored(opts.GroupNames), anchored(opts.GroupExclude))
}

// selected reports whether name matches one of include (or include is
// empty) and none of exclude; the expressions are anchored.
func selected(name string, include, exclude []*regexp.Regexp) bool {
	ok := len(include) == 0
	for _, re := range include {
		ok = ok || re.MatchString(name)
	}
	for _, re := range exclude {
		ok = ok && !re.MatchString(name)
	}
	return ok
}

// rename applies the first matching rule to name.
func rename(rules []Remap, name string) string {
	for _, rm := range rules {
		re := regexp.MustCompile(`^(?:` + rm.From.String() + `)$`)
		if sm := re.FindStringSubmatchIndex(name); sm != nil {
			return string(re.ExpandString(nil, rm.To, name, sm))
		}
	}
	return name
}
