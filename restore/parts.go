package restore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/producer"
	"github.com/ktape/ktape/repo"
)

// A restore in parts. Several processes share one restore: each calls
// Prepare (the first to get there creates the topics and records the
// start; the others find and join it), then RunPart with the target
// partitions it is given, as often as it is given some, and one of them
// Finish once every partition is restored. A target partition with all
// of its sources is the unit of work, as in the restore log: RunPart
// restores it whole, resuming it exactly where the target holds it, and
// records it complete (repo.RestorePart) once its last batch is
// acknowledged.
//
// Exactly once per target partition holds across a hand-over (the
// partition given to another process mid-way) because the next run
// resumes from the partition's end offset, and that offset is final when
// it reads it: RunPart whose ctx ends stops sending and returns only once
// every produce request it wrote is answered or its connection has failed
// (producer.Stop); and the next run, like any resumed restore, reads the
// end offsets until they stay the same for a while (settle), for a
// process killed with requests on the wire.

// ErrIncomplete is returned (wrapped) by Finish while some target
// partition of the restore has no completion record.
var ErrIncomplete = errors.New("restore: not every target partition is restored yet")

// errTopicAlreadyExists is Kafka's TOPIC_ALREADY_EXISTS.
const errTopicAlreadyExists = 36

// stopWait bounds the wait for the produce requests in flight when a
// run stops early. A connection fails a request not answered within the
// produce timeout (30 s) plus the client's request timeout, so the wait
// ends before this unless the client is configured with longer ones.
var stopWait = 2 * time.Minute

// Prepared is a restore ready to be run in parts: Prepare's result.
type Prepared struct {
	// ID is the restore's id; RunPart and Finish take it.
	ID string
	// Partitions are the restore's target partitions, the units of work
	// handed to RunPart, in the restore log's order. With records spread
	// by key, every partition of the target topic is one.
	Partitions []client.TopicPartition
	// Resumed: the restore had been begun before (by another process, or
	// an earlier run); Complete: it has finished (Finish only commits the
	// group offsets again).
	Resumed, Complete bool
	TopicsCreated     int
}

// setup is one restore as this process works it out: the plan, its id,
// and its log as read.
type setup struct {
	m       *repo.Manifest
	opts    Options
	targets []Target
	jobs    []*job
	parts   []*partState
	id      string
	cluster string
	start   *repo.RestoreStart
	done    *repo.RestoreDone
}

// newSetup plans the restore of m with opts into c and works out its id.
// With create, missing target topics are created (Prepare); without,
// they must exist.
func newSetup(ctx context.Context, c *client.Client, r *repo.Repository, m *repo.Manifest, opts Options, create, checkKey bool, st *Stats) (*setup, error) {
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
		return nil, err
	}
	st.Partitions = len(targets)
	// A key that cannot read the data fails here, before any topic is
	// created.
	if checkKey {
		if err := r.CheckDataKey(ctx, m); err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
	}
	cluster, err := c.DescribeCluster(ctx)
	if err != nil {
		return nil, fmt.Errorf("restore: describe the target cluster: %w", err)
	}
	// The topics first: the restore's id names them by their topic ids.
	topicIDs, err := prepareTopics(ctx, c, targets, opts, create, st)
	if err != nil {
		return nil, err
	}
	s := &setup{m: m, opts: opts, targets: targets, cluster: cluster.ClusterID}
	s.id = restoreID(m, cluster.ClusterID, targets, topicIDs)
	s.jobs, s.parts = jobsOf(targets)
	st.ID = s.id
	return s, nil
}

// load is newSetup for a restore Prepare began: the options must give
// restore id, whose start record must exist.
func load(ctx context.Context, c *client.Client, r *repo.Repository, m *repo.Manifest, id string, opts Options, checkKey bool, st *Stats) (*setup, error) {
	s, err := newSetup(ctx, c, r, m, opts, false, checkKey, st)
	if err != nil {
		return nil, err
	}
	if s.id != id {
		return nil, fmt.Errorf("restore: the backup, target and options given make restore %s, not %s: every process of a restore must be given the same", s.id, id)
	}
	if s.done, err = r.RestoreDone(ctx, id); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	start, err := r.RestoreStart(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if start == nil {
		return nil, fmt.Errorf("restore: restore %s has no start record (%s): prepare it first", id, "restores/"+id+"/start.json")
	}
	if err := checkStart(start, s.parts); err != nil {
		return nil, err
	}
	s.start = start
	return s, nil
}

// Prepare does what a restore does once before anything is produced:
// it plans it, creates the missing target topics, works out its id, and
// records its start (checking that the target partitions are empty,
// unless allowed), or finds it begun or finished. Several processes may
// call it at once or one after another: the first start record written
// stands, and the others join it.
func Prepare(ctx context.Context, c *client.Client, r *repo.Repository, m *repo.Manifest, opts Options) (*Prepared, error) {
	var st Stats
	s, err := prepare(ctx, c, r, m, opts, &st)
	if err != nil {
		return nil, err
	}
	p := &Prepared{ID: s.id, Resumed: st.Resumed, Complete: st.Complete, TopicsCreated: st.TopicsCreated}
	for _, ps := range s.parts {
		p.Partitions = append(p.Partitions, ps.dest)
	}
	return p, nil
}

func prepare(ctx context.Context, c *client.Client, r *repo.Repository, m *repo.Manifest, opts Options, st *Stats) (*setup, error) {
	s, err := newSetup(ctx, c, r, m, opts, true, true, st)
	if err != nil {
		return nil, err
	}
	if s.done, err = r.RestoreDone(ctx, s.id); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if s.done != nil {
		if err := checkDone(ctx, c, s.done, dests(s.targets)); err != nil {
			return nil, err
		}
		st.Complete = true
		s.opts.Log.Info("restore: this restore already finished; nothing to produce", "restore", s.id, "finished", s.done.Finished)
		return s, nil
	}
	if s.start, st.Resumed, err = s.begin(ctx, c, r); err != nil {
		return nil, err
	}
	if err := checkStart(s.start, s.parts); err != nil {
		return nil, err
	}
	return s, nil
}

// begin reads the restore's start record, or writes it. Another process
// may begin the same restore at the same time: its records then fail
// this one's emptiness check, or its start record is written first (the
// repository writes an object once; another content is a conflict).
// Either way its record stands, and is returned with resumed set.
func (s *setup) begin(ctx context.Context, c *client.Client, r *repo.Repository) (start *repo.RestoreStart, resumed bool, err error) {
	if start, err = r.RestoreStart(ctx, s.id); err != nil {
		return nil, false, fmt.Errorf("restore: %w", err)
	}
	if start != nil {
		return start, true, nil
	}
	start, err = begin(ctx, c, r, s.m, s.id, s.cluster, s.parts, s.opts)
	if err == nil {
		return start, false, nil
	}
	if again, rerr := r.RestoreStart(ctx, s.id); rerr == nil && again != nil {
		s.opts.Log.Info("restore: another process began this restore meanwhile; joining it", "restore", s.id)
		return again, true, nil
	}
	return nil, false, err
}

// RunPart restores the target partitions dests of restore id, which
// Prepare began with the same backup, target and options: each from
// where the target holds it, skipping those already complete. Each
// partition is recorded complete in the restore log (its offset map and
// a repo.RestorePart) as soon as its last batch is acknowledged.
//
// When ctx ends (the partitions were given to another process), RunPart
// stops sending and returns only once every produce request it wrote is
// answered or its connection has failed, so that nothing it sent is
// appended after it returns (but for a request a broker read from a
// connection that then broke, which the next run's settle wait covers).
// The end offsets of dests are read until they settle before anything is
// sent, since another process may have written them last.
//
// Partitions spread by key are restored by walking every source
// partition of their topic: a run given some of a topic's partitions
// reads all of the topic's data, and sends only theirs.
func RunPart(ctx context.Context, c *client.Client, r *repo.Repository, m *repo.Manifest, id string, dests []client.TopicPartition, opts Options) (Stats, error) {
	st := Stats{ID: id}
	s, err := load(ctx, c, r, m, id, opts, true, &st)
	if err != nil {
		return st, err
	}
	byDest := map[client.TopicPartition]*partState{}
	for _, ps := range s.parts {
		byDest[ps.dest] = ps
	}
	var parts []*partState
	seen := map[client.TopicPartition]bool{}
	for _, d := range dests {
		ps := byDest[d]
		if ps == nil {
			return st, fmt.Errorf("restore: %s is not a target partition of restore %s", d, id)
		}
		if !seen[d] {
			seen[d] = true
			parts = append(parts, ps)
		}
	}
	st.Partitions = len(parts)
	err = s.run(ctx, c, r, parts, true, &st)
	return st, err
}

// run restores parts, the others of their jobs left alone. With settled,
// their end offsets must settle first (they may have been written by
// another run).
func (s *setup) run(ctx context.Context, c *client.Client, r *repo.Repository, parts []*partState, settled bool, st *Stats) error {
	var skipped int64
	var todo []*partState
	for _, ps := range parts {
		rec, err := r.RestorePart(ctx, s.id, ps.dest.Topic, ps.dest.Partition)
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		if rec != nil {
			if rec.Start != ps.start {
				return fmt.Errorf("restore: %s: its completion record (%s) starts at offset %d, the restore's start record at %d",
					ps.dest, repo.RestorePartKey(s.id, ps.dest.Topic, ps.dest.Partition), rec.Start, ps.start)
			}
			st.AlreadyComplete++
			skipped += rec.Batches
			continue
		}
		ps.active = true
		todo = append(todo, ps)
	}
	// The jobs restoring the partitions asked for; those with none to do
	// are reported as restored.
	chosen := map[*partState]bool{}
	for _, ps := range parts {
		chosen[ps] = true
	}
	obs := s.opts.Observer
	if obs == nil {
		obs = nopObserver{}
	}
	var jobs []*job
	for _, j := range s.jobs {
		asked, active := false, false
		for _, ps := range j.parts {
			asked = asked || chosen[ps]
			active = active || ps.active
		}
		if !asked {
			continue
		}
		for _, t := range j.targets {
			obs.Planned(PartitionPlan{Source: t.Source, Dest: t.Dest, From: t.Backup.From, To: t.Backup.To})
		}
		if active {
			jobs = append(jobs, j)
			continue
		}
		for _, t := range j.targets {
			obs.Restored(Event{Source: t.Source, Dest: t.Dest, Next: t.Backup.To})
		}
	}
	if len(todo) == 0 {
		st.AlreadyRestored += skipped
		return nil
	}
	if err := resumeFrom(ctx, c, todo, settled); err != nil {
		return err
	}

	opts := s.opts
	// Memory: read buffers, which hold the batches in flight too, get
	// three quarters; the rest is for indexes, decompressors and batches
	// re-encoded at the window's bounds. Batches queued in the producer
	// are bounded to a quarter: enough to keep every partition's requests
	// in flight, and more only fills memory (and costs page faults) while
	// the broker is the bottleneck.
	// Batches being built by key come out of the read buffers' share.
	keyMem := keyBatchMemory(jobs, opts.Workers)
	if keyMem > opts.Memory/2 {
		return fmt.Errorf("restore: a memory budget of %d bytes is too small to spread records by key: the batches being built take %d bytes (%d KiB per target partition of the topics restored at once); give at least %d",
			opts.Memory, keyMem, keyBatchBytes>>10, 2*keyMem)
	}
	p, err := producer.New(ctx, c, producer.Config{MaxBufferedBytes: opts.Memory / 4})
	if err != nil {
		return fmt.Errorf("restore: producer: %w", err)
	}
	e := &engine{r: r, p: p, log: opts.Log, pool: newBufPool(opts.Memory*3/4 - keyMem), limit: newLimiter(opts.RateLimit), groups: committedOffsets(s.m), obs: obs}
	work := make(chan *job)
	errs := make(chan error, opts.Workers)
	var wg, completers sync.WaitGroup
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				if err := e.job(wctx, j); err != nil {
					errs <- err
					cancel()
					return
				}
				completers.Add(1)
				go func() {
					defer completers.Done()
					e.complete(ctx, c, s.id, j)
				}()
			}
		}()
	}
feed:
	for _, j := range jobs {
		select {
		case work <- j:
		case <-wctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	err = <-errs
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		if ferr := p.Flush(ctx); ferr != nil {
			err = fmt.Errorf("restore: %w", ferr)
		}
	}
	if err != nil {
		// Stopped early: nothing more is sent, and what was sent is
		// answered (or its connection gone) before this returns, so
		// that the partitions' end offsets are final for whoever
		// restores them next.
		sctx, cancelStop := context.WithTimeout(context.WithoutCancel(ctx), stopWait)
		if serr := p.Stop(sctx); serr != nil {
			err = errors.Join(err, fmt.Errorf("restore: %w: a request may still be appended; the next run waits for the end offsets to settle", serr))
		}
		cancelStop()
	}
	p.Close() // fails what is left, so that every partition's acks end
	completers.Wait()
	*st = e.stats(*st)
	st.AlreadyRestored += skipped
	st.Throttled += p.Stats().Throttled
	if err != nil {
		return err
	}
	return e.sendErr()
}

// complete records the active partitions of job j complete once all
// their batches are acknowledged: it checks that each ends where its
// restored records do, stores its offset map and its completion record.
// A partition with a batch that failed is left unrecorded (the run
// fails). So is one whose records are in but whose run was stopped
// before they were recorded: the next run finds them in the target and
// records them.
func (e *engine) complete(ctx context.Context, c *client.Client, id string, j *job) {
	var parts []*partState
	for _, ps := range j.parts {
		if !ps.active {
			continue
		}
		ps.acks.Wait()
		if ps.failed.Load() {
			return
		}
		parts = append(parts, ps)
	}
	if err := e.record(ctx, c, id, parts); err != nil && ctx.Err() == nil {
		e.fail(err)
	}
}

func (e *engine) record(ctx context.Context, c *client.Client, id string, parts []*partState) error {
	ds := make([]client.TopicPartition, len(parts))
	for i, ps := range parts {
		ds[i] = ps.dest
	}
	ends, err := endOffsets(ctx, c, ds)
	if err != nil {
		return err
	}
	var wrong []error
	for _, ps := range parts {
		if got, want := ends[ps.dest], ps.start+ps.walked; got != want {
			wrong = append(wrong, fmt.Errorf("%s ends at offset %d, but the restore's records end at %d", ps.dest, got, want))
		}
	}
	if len(wrong) > 0 {
		return fmt.Errorf("restore: something else wrote into the target while restoring, so the restore is not recorded as done: %w", errors.Join(wrong...))
	}
	for _, ps := range parts {
		key, sum, err := e.r.PutOffsetMap(ctx, id, ps.dest.Topic, ps.dest.Partition, ps.m)
		if err != nil {
			return fmt.Errorf("restore: store the offset map of %s: %w", ps.dest, err)
		}
		rec := &repo.RestorePart{ID: id, Topic: ps.dest.Topic, Partition: ps.dest.Partition, Start: ps.start, End: ps.start + ps.walked,
			Batches: ps.batches, Map: key, SHA256: sum}
		if ps.translated != nil {
			for _, c := range e.groups[ps.sources[0].Source] {
				rec.Offsets = append(rec.Offsets, repo.TranslatedOffset{Source: c, Target: ps.translated[c]})
			}
		}
		if err := e.r.PutRestorePart(ctx, rec); err != nil {
			return fmt.Errorf("restore: record %s complete: %w", ps.dest, err)
		}
	}
	return nil
}

// Finish records restore id as done once every target partition is
// complete, and commits the translated group offsets when opts ask for
// it. It reads only the restore log and the target's end offsets: every
// partition must end exactly where its completion record says. While a
// partition has no completion record, it returns an error that wraps
// ErrIncomplete and names some of them. A restore already done is only
// checked, and its group offsets committed again.
func Finish(ctx context.Context, c *client.Client, r *repo.Repository, m *repo.Manifest, id string, opts Options) (Stats, error) {
	st := Stats{ID: id}
	s, err := load(ctx, c, r, m, id, opts, false, &st)
	if err != nil {
		return st, err
	}
	if s.done != nil {
		if err := checkDone(ctx, c, s.done, dests(s.targets)); err != nil {
			return st, err
		}
		st.Complete = true
	}
	return st, s.finish(ctx, c, r, &st)
}

// finish writes the restore's done record unless it is there, and
// commits the group offsets.
func (s *setup) finish(ctx context.Context, c *client.Client, r *repo.Repository, st *Stats) error {
	if s.done == nil {
		d, err := s.recordDone(ctx, c, r)
		if err != nil {
			return err
		}
		s.done = d
	}
	return commitGroups(ctx, c, s.done.Groups, s.m, s.targets, s.opts, st)
}

// partReads is how many completion records are read at once.
const partReads = 16

// recordDone checks that every target partition is complete and ends
// where its completion record says, and writes the restore's done record
// from the completion records.
func (s *setup) recordDone(ctx context.Context, c *client.Client, r *repo.Repository) (*repo.RestoreDone, error) {
	recs := make([]*repo.RestorePart, len(s.parts))
	errs := make([]error, len(s.parts))
	sem := make(chan struct{}, partReads)
	var wg sync.WaitGroup
	for i, ps := range s.parts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			recs[i], errs[i] = r.RestorePart(ctx, s.id, ps.dest.Topic, ps.dest.Partition)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	var missing []string
	for i, ps := range s.parts {
		if recs[i] == nil {
			missing = append(missing, ps.dest.String())
		}
	}
	if len(missing) > 0 {
		list := strings.Join(missing[:min(len(missing), 10)], ", ")
		if len(missing) > 10 {
			list += fmt.Sprintf(" and %d more", len(missing)-10)
		}
		return nil, fmt.Errorf("%w: %d of the %d target partitions of restore %s are not complete: %s", ErrIncomplete, len(missing), len(s.parts), s.id, list)
	}
	ends, err := endOffsets(ctx, c, dests(s.targets))
	if err != nil {
		return nil, err
	}
	d := &repo.RestoreDone{ID: s.id, Finished: time.Now().UTC().Truncate(time.Millisecond)}
	groups := committedOffsets(s.m)
	var wrong []error
	for i, ps := range s.parts {
		rec := recs[i]
		key := repo.RestorePartKey(s.id, ps.dest.Topic, ps.dest.Partition)
		if rec.Start != ps.start {
			return nil, fmt.Errorf("restore: %s starts at offset %d, the restore's start record says %d", key, rec.Start, ps.start)
		}
		if got := ends[ps.dest]; got != rec.End {
			wrong = append(wrong, fmt.Errorf("%s ends at offset %d, but the restore's records end at %d", ps.dest, got, rec.End))
		}
		d.Partitions = append(d.Partitions, repo.RestoredPartition{Topic: ps.dest.Topic, Partition: ps.dest.Partition,
			Start: rec.Start, End: rec.End, Batches: rec.Batches, Map: rec.Map, SHA256: rec.SHA256})
		// Offsets translate on a partition restored alone from one
		// source, batches as they were: the record holds every
		// committed offset of that source.
		if ps.hash || len(ps.sources) != 1 {
			continue
		}
		ps.translated = map[int64]int64{}
		for _, o := range rec.Offsets {
			ps.translated[o.Source] = o.Target
		}
		for _, o := range groups[ps.sources[0].Source] {
			if _, ok := ps.translated[o]; !ok {
				return nil, fmt.Errorf("restore: %s has no target offset for the committed offset %d of %s", key, o, ps.sources[0].Source)
			}
		}
	}
	if len(wrong) > 0 {
		return nil, fmt.Errorf("restore: something else wrote into the target while restoring, so the restore is not recorded as done: %w", errors.Join(wrong...))
	}
	d.Groups = translateGroups(s.m, s.parts)
	if err := r.PutRestoreDone(ctx, d); err != nil {
		// Another process finishing the same restore at the same time
		// wrote its record first (at another time): it stands.
		if again, rerr := r.RestoreDone(ctx, s.id); rerr == nil && again != nil {
			return again, nil
		}
		return nil, fmt.Errorf("restore: record the end: %w", err)
	}
	return d, nil
}
