// Package restore is ktape's restore engine: it reads a backup from a
// repository (package repo) and produces its batches into a cluster through
// the producer's batch path, each batch's header rewritten in place and its
// payload untouched. Segments are read in units of about a MiB (whole
// frames) into pooled buffers, read ahead of the sending, each batch's
// CRC-32C checked; a batch is sent from the buffer it was read into, which
// goes back to the pool once all of its batches are acknowledged.
//
// Transaction markers and the batches of aborted transactions are dropped,
// so the target holds exactly what a read_committed consumer of the source
// saw. A point-in-time window (Options.From, To, ToOffset) skips batches
// wholly outside it from their index entries, without reading them, and
// re-encodes only the batches that straddle a bound. Each target
// partition's offsets are recorded batch by batch in the repository's
// restore log (repo.RestoreStart, OffsetMap, RestoreDone), which makes a
// restore killed at any moment resumable without a duplicate or a loss,
// and translates consumer group offsets exactly.
//
// A partition map (Options.PartitionMap, pmap.go) restores a topic into
// other partitions: explicitly, batches still sent as stored, or spread
// over N partitions by key, records re-encoded (spread.go).
//
// A restore may be shared by several processes (parts.go): Prepare once
// per process, RunPart for the target partitions each is given, Finish
// once they are all complete. Run is the three in one process.
package restore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/producer"
	"github.com/ktape/ktape/protocol"
	"github.com/ktape/ktape/repo"
)

// Remap renames topics: a source topic whose whole name matches From is
// restored as To, expanded with From's capture groups ($1, ${name}).
type Remap struct {
	From *regexp.Regexp
	To   string
}

// Options configure a restore.
type Options struct {
	// Topics selects source topics by regular expression (full match);
	// none selects every topic of the backup. Exclude drops topics.
	Topics, Exclude []*regexp.Regexp
	// Remap renames topics; the first that matches applies.
	Remap []Remap
	// PartitionMap restores topics into other partitions than their own
	// (see PartitionMap); the first whose expression matches a source
	// topic's name applies. Topics no map matches keep their partitions.
	PartitionMap []PartitionMap
	// From and To restore only records whose timestamp is in [From, To]
	// (both inclusive, millisecond precision); a zero time is no bound.
	From, To time.Time
	// ToOffset restores a source partition only up to and including this
	// offset.
	ToOffset map[client.TopicPartition]int64
	// Groups commits the backup's consumer group offsets, translated, to
	// the target's groups (those with no active members); GroupNames
	// and GroupExclude select groups by name, GroupRemap renames them.
	Groups                   bool
	GroupNames, GroupExclude []*regexp.Regexp
	GroupRemap               []Remap
	// NoCreateTopics fails instead of creating missing target topics.
	NoCreateTopics bool
	// ReplicationFactor of created topics; 0 keeps the source's.
	ReplicationFactor int16
	// AllowNonEmpty restores into partitions that already hold records;
	// by default that is refused, since the result would mix both.
	AllowNonEmpty bool
	// Memory bounds the bytes held: batches read and not yet
	// acknowledged, and what is read ahead. Default 256 MiB.
	Memory int64
	// RateLimit bounds the batch bytes produced per second; 0 is none.
	RateLimit int64
	// Workers is the number of partitions read at once; default 4.
	Workers int
	Log     *slog.Logger
	// Observer, if set, is told of the restore's progress.
	Observer Observer
}

// Stats are a restore's totals.
type Stats struct {
	// ID is the restore's id: its log is restores/<ID>/ in the repository.
	ID string
	// Resumed is set when the restore continued an interrupted one;
	// Complete when it had already finished (nothing was produced).
	Resumed, Complete bool
	Partitions        int
	TopicsCreated     int
	Batches           int64 // produced
	Records           int64
	Bytes             int64
	// AlreadyRestored are batches a resumed restore found in the target;
	// AlreadyComplete the target partitions it found recorded complete
	// (their batches are counted in AlreadyRestored), which it skipped.
	AlreadyRestored int64
	AlreadyComplete int
	// Skipped batches: transaction markers, aborted transactions, and
	// transactions with no marker in the backup (undecided when it was
	// taken); batches wholly outside the point-in-time window.
	Markers, Aborted, Undecided, Outside int64
	Renumbered                           int64 // compacted batches given contiguous offsets
	Filtered                             int64 // batches straddling the window, re-encoded with the records inside it
	// Converted are legacy (magic 0 and 1) messages converted to v2
	// batches.
	Converted int64
	// Repartitioned are source batches whose records were spread over
	// target partitions by key (re-encoded).
	Repartitioned int64
	// Throttled is how long the producer paused because brokers over
	// their quota asked it to (KIP-219), across brokers.
	Throttled time.Duration
	// GroupsCommitted are the groups whose translated offsets were
	// committed to the target.
	GroupsCommitted []string
	// GroupsNotTranslated are the offsets of selected groups that were
	// not committed because no exact translation exists: on source
	// partitions merged with others or spread by key. Each is "GROUP:
	// TOPIC/P,P,..." (the backup's group and topic names).
	GroupsNotTranslated []string
}

// Target is where one backed-up partition is restored.
type Target struct {
	// Dest is the target partition; with Hash, Dest.Partition is -1 and
	// the records go to partitions 0..Hash-1 of Dest.Topic by key.
	Source, Dest client.TopicPartition
	Hash         int32
	// Backup is the partition in the manifest, Topic its topic.
	Backup *repo.Partition
	Topic  *repo.Topic
	window window
	// need is the partition count Dest.Topic must have for this target,
	// create the count it is created with when missing.
	need, create int32
}

// Plan works out where each selected partition of m goes.
func Plan(m *repo.Manifest, opts Options) ([]Target, error) {
	topics, exclude := anchored(opts.Topics), anchored(opts.Exclude)
	var out []Target
	dests := map[string]string{}
	used := map[*PartitionMap]bool{}
	for i := range m.Topics {
		t := &m.Topics[i]
		if !selected(t.Name, topics, exclude) {
			continue
		}
		dst := rename(opts.Remap, t.Name)
		if !validTopic(dst) {
			return nil, fmt.Errorf("restore: topic %s would be restored as %q, which is not a valid topic name", t.Name, dst)
		}
		if other, ok := dests[dst]; ok {
			return nil, fmt.Errorf("restore: topics %s and %s would both be restored into %s", other, t.Name, dst)
		}
		dests[dst] = t.Name
		first := len(out)
		for j := range t.Partitions {
			p := &t.Partitions[j]
			src := client.TopicPartition{Topic: t.Name, Partition: p.Partition}
			to, has := opts.ToOffset[src]
			out = append(out, Target{Source: src, Dest: client.TopicPartition{Topic: dst, Partition: p.Partition},
				Backup: p, Topic: t, window: newWindow(p, opts.From, opts.To, to, has)})
		}
		pm := partitionMap(opts.PartitionMap, t.Name)
		if pm != nil {
			used[pm] = true
		}
		if err := mapTopic(t, pm, out[first:]); err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		return nil, errors.New("restore: no topic of the backup matches")
	}
	for i := range opts.PartitionMap {
		if pm := &opts.PartitionMap[i]; !used[pm] {
			return nil, fmt.Errorf("restore: the partition map %s matches no topic restored (or an earlier map matches first)", pm)
		}
	}
	if !opts.From.IsZero() && !opts.To.IsZero() && opts.To.Before(opts.From) {
		return nil, fmt.Errorf("restore: the window ends (%s) before it starts (%s)", opts.To.UTC().Format(time.RFC3339Nano), opts.From.UTC().Format(time.RFC3339Nano))
	}
	for tp := range opts.ToOffset {
		found := false
		for _, t := range out {
			found = found || t.Source == tp
		}
		if !found {
			return nil, fmt.Errorf("restore: --to-offset names %s, which is not among the partitions restored", tp)
		}
	}
	return out, nil
}

var topicRe = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

func validTopic(name string) bool { return topicRe.MatchString(name) && name != "." && name != ".." }

// Run restores the backup m from r into the cluster c.
//
// The restore's id is derived from the backup, the target cluster and
// what is restored where; its log in r (see package repo) makes running
// the same restore again continue an interrupted one exactly where the
// target's partitions end, or, when it finished, only commit the group
// offsets again.
//
// Run is Prepare, RunPart of every target partition and Finish, in one
// process: see those for a restore shared by several.
func Run(ctx context.Context, c *client.Client, r *repo.Repository, m *repo.Manifest, opts Options) (Stats, error) {
	var st Stats
	s, err := prepare(ctx, c, r, m, opts, &st)
	if err != nil {
		return st, err
	}
	if !st.Complete {
		if st.Resumed {
			s.opts.Log.Info("restore: resuming an interrupted restore", "restore", st.ID, "started", s.start.Started)
		}
		// A restore this call began was written by no one before: its
		// end offsets need not settle.
		if err := s.run(ctx, c, r, s.parts, st.Resumed, &st); err != nil {
			return st, err
		}
	}
	return st, s.finish(ctx, c, r, &st)
}

// prepareTopics creates the target topics that do not exist, checks that
// those that do have the partitions needed, and returns their topic ids
// (zero where the cluster has none).
//
// Without create, a missing topic is an error: a run of a part of a
// restore, or its finish, creates nothing (Prepare did). A topic another
// process created first (TOPIC_ALREADY_EXISTS) is taken as it is, its
// partitions checked like any topic found.
func prepareTopics(ctx context.Context, c *client.Client, targets []Target, opts Options, create bool, st *Stats) (map[string][16]byte, error) {
	type topic struct {
		need, create int32
		hash         int32
		t            *Target
	}
	need := map[string]*topic{}
	for i := range targets {
		t := &targets[i]
		cur := need[t.Dest.Topic]
		if cur == nil {
			cur = &topic{t: t, create: t.create, hash: t.Hash}
			need[t.Dest.Topic] = cur
		}
		cur.need = max(cur.need, t.need)
	}
	names := make([]string, 0, len(need))
	for n := range need {
		names = append(names, n)
	}
	sort.Strings(names)
	md, err := c.RefreshMetadata(ctx, names)
	if err != nil {
		return nil, fmt.Errorf("restore: metadata: %w", err)
	}
	var toCreate []client.TopicSpec
	for _, name := range names {
		t := need[name]
		if tm := md.Topics[name]; tm != nil && tm.Err == nil {
			if int32(len(tm.Partitions)) < t.need {
				return nil, fmt.Errorf("restore: topic %s has %d partitions; restoring %s needs %d", name, len(tm.Partitions), t.t.Source.Topic, t.need)
			}
			if t.hash > 0 && int32(len(tm.Partitions)) != t.hash {
				opts.Log.Warn("restore: records are spread by key over fewer partitions than the target topic has: a producer using the topic's own partition count puts keys elsewhere",
					"topic", name, "partitions", len(tm.Partitions), "spread_over", t.hash)
			}
			continue
		}
		if !create {
			return nil, fmt.Errorf("restore: target topic %s does not exist: prepare the restore first (restore.Prepare creates it)", name)
		}
		if opts.NoCreateTopics {
			return nil, fmt.Errorf("restore: topic %s does not exist (and creating topics is turned off)", name)
		}
		rf := opts.ReplicationFactor
		if rf <= 0 {
			rf = int16(max(1, t.t.Topic.ReplicationFactor))
		}
		toCreate = append(toCreate, client.TopicSpec{Name: name, NumPartitions: t.create, ReplicationFactor: rf, Configs: t.t.Topic.Configs})
	}
	if len(toCreate) > 0 {
		res := c.CreateTopics(ctx, toCreate)
		for _, spec := range toCreate {
			err := res[spec.Name]
			if ke := (*protocol.KafkaError)(nil); errors.As(err, &ke) && ke.Code == errTopicAlreadyExists {
				opts.Log.Info("restore: topic created meanwhile by another process", "topic", spec.Name)
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("restore: create topic %s (%d partitions, replication factor %d): %w", spec.Name, spec.NumPartitions, spec.ReplicationFactor, err)
			}
			st.TopicsCreated++
			opts.Log.Info("restore: created topic", "topic", spec.Name, "partitions", spec.NumPartitions, "replication_factor", spec.ReplicationFactor)
		}
	}
	// A created topic shows in metadata a moment later; the restore's id
	// needs its topic id.
	ids := map[string][16]byte{}
	for attempt := 0; ; attempt++ {
		for _, name := range names {
			tm := md.Topics[name]
			if tm == nil || tm.Err != nil || len(tm.Partitions) == 0 {
				continue
			}
			if int32(len(tm.Partitions)) < need[name].need && attempt >= 5 {
				// created meanwhile by someone else, with fewer
				return nil, fmt.Errorf("restore: topic %s has %d partitions; restoring %s needs %d", name, len(tm.Partitions), need[name].t.Source.Topic, need[name].need)
			}
			if int32(len(tm.Partitions)) >= need[name].need {
				ids[name] = tm.ID
			}
		}
		if len(ids) == len(names) {
			return ids, nil
		}
		if attempt == 50 {
			return nil, fmt.Errorf("restore: the topics created do not show in the cluster's metadata after %d tries", attempt)
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if md, err = c.RefreshMetadata(ctx, names); err != nil {
			return nil, fmt.Errorf("restore: metadata: %w", err)
		}
	}
}

// checkEmpty refuses target partitions that hold records, unless allowed.
func checkEmpty(ctx context.Context, c *client.Client, dests []client.TopicPartition, opts Options) error {
	if opts.AllowNonEmpty {
		return nil
	}
	lo, hi := map[client.TopicPartition]int64{}, map[client.TopicPartition]int64{}
	for _, d := range dests {
		lo[d], hi[d] = client.Earliest, client.Latest
	}
	start, err := c.ListOffsets(ctx, client.ReadUncommitted, lo)
	if err != nil {
		return fmt.Errorf("restore: list offsets: %w", err)
	}
	end, err := c.ListOffsets(ctx, client.ReadUncommitted, hi)
	if err != nil {
		return fmt.Errorf("restore: list offsets: %w", err)
	}
	var full []string
	for _, d := range dests {
		s, e := start[d], end[d]
		if err := errors.Join(s.Err, e.Err); err != nil {
			return fmt.Errorf("restore: %s: offsets: %w", d, err)
		}
		if e.Offset > s.Offset {
			full = append(full, fmt.Sprintf("%s (%d records)", d, e.Offset-s.Offset))
		}
	}
	if len(full) > 0 {
		sort.Strings(full)
		return fmt.Errorf("restore: target partitions already hold records, and restoring would mix them with the backup's: %s (restore elsewhere with --remap, or allow it with --allow-nonempty)",
			strings.Join(full, ", "))
	}
	return nil
}

// anchored returns the expressions made to match whole names only.
func anchored(res []*regexp.Regexp) []*regexp.Regexp {
	out := make([]*regexp.Regexp, len(res))
	for i, re := range res {
		out[i] = regexp.MustCompile(`^(?:` + re.String() + `)$`)
	}
	return out
}

// engine holds what the partition workers share.
type engine struct {
	r     *repo.Repository
	p     *producer.Producer
	log   *slog.Logger
	pool  *bufPool
	obs   Observer
	limit *limiter
	// groups are the backup's committed offsets, by source partition
	groups map[client.TopicPartition][]int64

	batches, records, bytes, already atomic.Int64
	markers, aborted, undecided      atomic.Int64
	outside, ren, filtered, spread   atomic.Int64
	legacy                           atomic.Int64

	mu       sync.Mutex
	firstErr error
}

func (e *engine) stats(st Stats) Stats {
	st.Batches, st.Records, st.Bytes, st.AlreadyRestored = e.batches.Load(), e.records.Load(), e.bytes.Load(), e.already.Load()
	st.Markers, st.Aborted, st.Undecided, st.Outside = e.markers.Load(), e.aborted.Load(), e.undecided.Load(), e.outside.Load()
	st.Renumbered, st.Filtered, st.Repartitioned = e.ren.Load(), e.filtered.Load(), e.spread.Load()
	st.Converted = e.legacy.Load()
	return st
}

func (e *engine) fail(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.firstErr == nil {
		e.firstErr = err
	}
}

func (e *engine) sendErr() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.firstErr
}
