// Package restore is ktape's restore engine: it reads a backup from a
// repository (package repo) and produces its batches into a cluster through
// the producer's batch path, each batch's header rewritten in place and its
// payload untouched.
//
// This first version restores whole partitions: every batch of a backed-up
// range, into topics of the same or remapped names and the same partition
// numbers, creating missing topics with the source's partition count and
// configs. Transaction markers and the batches of aborted transactions are
// dropped, so the target holds exactly what a read_committed consumer of
// the source saw. Point-in-time windows, partition remapping, consumer
// group offsets and exactly-once resume are not written yet.
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

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/producer"
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
	// NoCreateTopics fails instead of creating missing target topics.
	NoCreateTopics bool
	// ReplicationFactor of created topics; 0 keeps the source's.
	ReplicationFactor int16
	// AllowNonEmpty restores into partitions that already hold records;
	// by default that is refused, since the result would mix both.
	AllowNonEmpty bool
	// Memory bounds the bytes held: batches sent and not yet
	// acknowledged, and segments being read. Default 256 MiB.
	Memory int64
	// Workers is the number of partitions read at once; default 4.
	Workers int
	Log     *slog.Logger
}

// Stats are a restore's totals.
type Stats struct {
	Partitions    int
	TopicsCreated int
	Batches       int64 // produced
	Records       int64
	Bytes         int64
	// Skipped batches: transaction markers, aborted transactions, and
	// transactions with no marker in the backup (undecided when it was
	// taken).
	Markers, Aborted, Undecided int64
	Renumbered                  int64 // compacted batches given contiguous offsets
}

// Target is where one backed-up partition is restored.
type Target struct {
	Source, Dest client.TopicPartition
	// Backup is the partition in the manifest, Topic its topic.
	Backup *repo.Partition
	Topic  *repo.Topic
}

// Plan works out where each selected partition of m goes.
func Plan(m *repo.Manifest, opts Options) ([]Target, error) {
	topics, exclude := anchored(opts.Topics), anchored(opts.Exclude)
	var out []Target
	dests := map[string]string{}
	for i := range m.Topics {
		t := &m.Topics[i]
		selected := len(topics) == 0
		for _, re := range topics {
			selected = selected || re.MatchString(t.Name)
		}
		for _, re := range exclude {
			selected = selected && !re.MatchString(t.Name)
		}
		if !selected {
			continue
		}
		dst := t.Name
		for _, rm := range opts.Remap {
			re := regexp.MustCompile(`^(?:` + rm.From.String() + `)$`)
			if sm := re.FindStringSubmatchIndex(t.Name); sm != nil {
				dst = string(re.ExpandString(nil, rm.To, t.Name, sm))
				break
			}
		}
		if !validTopic(dst) {
			return nil, fmt.Errorf("restore: topic %s would be restored as %q, which is not a valid topic name", t.Name, dst)
		}
		if other, ok := dests[dst]; ok {
			return nil, fmt.Errorf("restore: topics %s and %s would both be restored into %s", other, t.Name, dst)
		}
		dests[dst] = t.Name
		for j := range t.Partitions {
			p := &t.Partitions[j]
			out = append(out, Target{Source: client.TopicPartition{Topic: t.Name, Partition: p.Partition},
				Dest: client.TopicPartition{Topic: dst, Partition: p.Partition}, Backup: p, Topic: t})
		}
	}
	if len(out) == 0 {
		return nil, errors.New("restore: no topic of the backup matches")
	}
	return out, nil
}

var topicRe = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

func validTopic(name string) bool { return topicRe.MatchString(name) && name != "." && name != ".." }

// Run restores the backup m from r into the cluster c.
func Run(ctx context.Context, c *client.Client, r *repo.Repository, m *repo.Manifest, opts Options) (Stats, error) {
	var st Stats
	if opts.Memory <= 0 {
		opts.Memory = 256 << 20
	}
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	targets, err := Plan(m, opts)
	if err != nil {
		return st, err
	}
	st.Partitions = len(targets)
	if err := prepareTopics(ctx, c, targets, opts, &st); err != nil {
		return st, err
	}
	if err := checkEmpty(ctx, c, targets, opts); err != nil {
		return st, err
	}
	p, err := producer.New(ctx, c, producer.Config{MaxBufferedBytes: opts.Memory / 2})
	if err != nil {
		return st, fmt.Errorf("restore: producer: %w", err)
	}
	defer p.Close()

	e := &engine{r: r, p: p, log: opts.Log}
	e.segBudget = newBudget(opts.Memory / 2)
	work := make(chan *Target)
	errs := make(chan error, opts.Workers)
	var wg sync.WaitGroup
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range work {
				if err := e.partition(wctx, t); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		}()
	}
feed:
	for i := range targets {
		select {
		case work <- &targets[i]:
		case <-wctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return e.stats(st), err
	}
	if err := ctx.Err(); err != nil {
		return e.stats(st), err
	}
	if err := p.Flush(ctx); err != nil {
		return e.stats(st), fmt.Errorf("restore: %w", err)
	}
	if err := e.sendErr(); err != nil {
		return e.stats(st), err
	}
	return e.stats(st), nil
}

// prepareTopics creates the target topics that do not exist, and checks
// that those that do have the partitions needed.
func prepareTopics(ctx context.Context, c *client.Client, targets []Target, opts Options, st *Stats) error {
	need := map[string]*Target{}
	for i := range targets {
		t := &targets[i]
		if cur := need[t.Dest.Topic]; cur == nil || t.Backup.Partition > cur.Backup.Partition {
			need[t.Dest.Topic] = t
		}
	}
	names := make([]string, 0, len(need))
	for n := range need {
		names = append(names, n)
	}
	sort.Strings(names)
	md, err := c.RefreshMetadata(ctx, names)
	if err != nil {
		return fmt.Errorf("restore: metadata: %w", err)
	}
	var create []client.TopicSpec
	for _, name := range names {
		t := need[name]
		if tm := md.Topics[name]; tm != nil && tm.Err == nil {
			if int32(len(tm.Partitions)) <= t.Backup.Partition {
				return fmt.Errorf("restore: topic %s has %d partitions; restoring %s needs %d", name, len(tm.Partitions), t.Source.Topic, t.Backup.Partition+1)
			}
			continue
		}
		if opts.NoCreateTopics {
			return fmt.Errorf("restore: topic %s does not exist (and creating topics is turned off)", name)
		}
		rf := opts.ReplicationFactor
		if rf <= 0 {
			rf = int16(max(1, t.Topic.ReplicationFactor))
		}
		create = append(create, client.TopicSpec{Name: name, NumPartitions: int32(t.Topic.PartitionsCount), ReplicationFactor: rf, Configs: t.Topic.Configs})
	}
	if len(create) == 0 {
		return nil
	}
	res := c.CreateTopics(ctx, create)
	for _, spec := range create {
		if err := res[spec.Name]; err != nil {
			return fmt.Errorf("restore: create topic %s (%d partitions, replication factor %d): %w", spec.Name, spec.NumPartitions, spec.ReplicationFactor, err)
		}
		st.TopicsCreated++
		opts.Log.Info("restore: created topic", "topic", spec.Name, "partitions", spec.NumPartitions, "replication_factor", spec.ReplicationFactor)
	}
	if _, err := c.RefreshMetadata(ctx, names); err != nil {
		return fmt.Errorf("restore: metadata: %w", err)
	}
	return nil
}

// checkEmpty refuses target partitions that hold records, unless allowed.
func checkEmpty(ctx context.Context, c *client.Client, targets []Target, opts Options) error {
	if opts.AllowNonEmpty {
		return nil
	}
	lo, hi := map[client.TopicPartition]int64{}, map[client.TopicPartition]int64{}
	for _, t := range targets {
		lo[t.Dest], hi[t.Dest] = client.Earliest, client.Latest
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
	for _, t := range targets {
		s, e := start[t.Dest], end[t.Dest]
		if err := errors.Join(s.Err, e.Err); err != nil {
			return fmt.Errorf("restore: %s: offsets: %w", t.Dest, err)
		}
		if e.Offset > s.Offset {
			full = append(full, fmt.Sprintf("%s (%d records)", t.Dest, e.Offset-s.Offset))
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
	r         *repo.Repository
	p         *producer.Producer
	log       *slog.Logger
	segBudget *budget

	batches, records, bytes          atomic.Int64
	markers, aborted, undecided, ren atomic.Int64

	mu       sync.Mutex
	firstErr error
}

func (e *engine) stats(st Stats) Stats {
	st.Batches, st.Records, st.Bytes = e.batches.Load(), e.records.Load(), e.bytes.Load()
	st.Markers, st.Aborted, st.Undecided, st.Renumbered = e.markers.Load(), e.aborted.Load(), e.undecided.Load(), e.ren.Load()
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
