package restore

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/repo"
)

// translateGroups gives every committed offset of the backup's groups on
// a restored partition its target offset: that of the first restored
// record whose source offset is at or after it, or the target's end when
// no restored record is. A consumer resuming there reads exactly the
// restored records it had not read on the source.
func translateGroups(m *repo.Manifest, parts []*partState) []repo.Group {
	bySource := map[client.TopicPartition]*partState{}
	for _, ps := range parts {
		bySource[ps.t.Source] = ps
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
			tg.Offsets = append(tg.Offsets, repo.GroupOffset{Topic: ps.t.Dest.Topic, Partition: ps.t.Dest.Partition,
				Offset: off, LeaderEpoch: -1, Metadata: o.Metadata})
		}
		if len(tg.Offsets) > 0 {
			out = append(out, tg)
		}
	}
	return out
}

// commitGroups commits the translated offsets of the selected groups,
// renamed, to the target. A group with active members on the target is
// left alone (committing under a live consumer would move it behind its
// back, and the broker refuses it anyway), and so reported in the error,
// after the other groups are committed.
func commitGroups(ctx context.Context, c *client.Client, groups []repo.Group, opts Options, st *Stats) error {
	if !opts.Groups {
		return nil
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
