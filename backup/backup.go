// Package backup is ktape's backup engine: it reads topics from a cluster
// with the zero-copy fetcher and writes their batches, untouched, into a
// repository (package repo), manifest last.
//
// A run is a snapshot (each partition up to the high watermark, or last
// stable offset, it had when the run started) or continuous (following the
// topics until told to stop, picking up topics and partitions created
// meanwhile at each checkpoint). Either way the engine:
//
//   - fetches every selected partition at once, within a memory budget
//     shared by fetched responses, segments being built and segments being
//     stored (in the background, a few at a time);
//   - commits a checkpoint every CheckpointInterval: it seals the open
//     segments, waits until every segment is stored, then writes a
//     checkpoint manifest naming only stored data. A run killed at any
//     moment and started again continues from its newest checkpoint;
//   - continues each partition where the previous complete backup in the
//     repository ended (incremental), referencing its segments, unless
//     told to make a full backup;
//   - records gaps (data deleted before it was fetched), aborted
//     transactions, topic configs and consumer-group offsets;
//   - writes the backup's manifest last: the backup exists from then on.
package backup

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/record"
	"github.com/ktape/ktape/repo"
)

// Modes of a run.
const (
	Snapshot   = "snapshot"
	Continuous = "continuous"
)

// Options configure a backup.
type Options struct {
	// Topics selects topics by regular expression (full match); none
	// selects every topic. Internal topics (leading "__") are selected
	// only by an expression that names them exactly.
	Topics []*regexp.Regexp
	// Exclude drops topics matching any of these.
	Exclude []*regexp.Regexp
	// Mode is Snapshot (the default) or Continuous.
	Mode string
	// Compression is auto (the default: zstd frames unless the batches
	// are compressed), zstd, lz4 or none.
	Compression string
	// Isolation read_committed backs up to the last stable offset and
	// records aborted transactions; the default reads to the high
	// watermark (aborted data and markers are stored either way).
	Isolation client.Isolation
	// Memory bounds the bytes held by the engine: fetched data waiting to
	// be written, segments being built and segments being stored. Half
	// goes to fetching, half to segments. Default 256 MiB.
	Memory int64
	// SegmentBytes is the size at which a segment is sealed and stored;
	// default min(64 MiB, Memory/8), half that in an encrypted repository.
	SegmentBytes int
	// CheckpointInterval is how often a checkpoint is committed; default
	// one minute.
	CheckpointInterval time.Duration
	// Uploads bounds the segments stored at once; default 4.
	Uploads int
	// Full backs up every partition from its log start instead of
	// continuing where the repository's newest backup ended.
	Full bool
	// Fresh starts a new run even when the repository holds an
	// unfinished one, which is otherwise resumed.
	Fresh bool
	// SkipGroups leaves consumer-group offsets out of the backup (for
	// principals not allowed to describe groups).
	SkipGroups bool
	// Stop, when closed, ends the run gracefully: a continuous run
	// writes its manifest and returns it; a snapshot not yet complete
	// commits a checkpoint and returns ErrStopped. Cancelling the
	// context instead abandons the run at once; its newest checkpoint
	// stands.
	Stop <-chan struct{}
	// Observer, if set, is told of progress.
	Observer Observer
	// Log receives what a user should know (resumed runs, gaps,
	// truncated partitions); default slog.Default().
	Log *slog.Logger
	// Version is written into the manifest.
	Version string
	// Bootstrap is recorded in the manifest.
	Bootstrap []string
	// Workers, if set, shares the backup with other processes through a
	// Kafka group (workers.go): this process backs up the partitions the
	// group assigns it.
	Workers *Workers
}

// ErrStopped is returned when a snapshot was stopped (Options.Stop)
// before it was complete. Its progress is in a checkpoint: running the
// same backup again resumes it.
var ErrStopped = errors.New("backup: stopped before the snapshot was complete (checkpoint written; run again to resume)")

// Stats are a run's totals.
type Stats struct {
	ID          string
	Resumed     bool   // an unfinished run was continued
	Parent      string // the backup this one continues, if any
	Partitions  int
	Batches     int64 // fetched by this run
	Records     int64
	Bytes       int64 // batch bytes
	Segments    int   // stored by this run
	StoredBytes int64
	Checkpoints int
	Gaps        int
	Groups      int
	// PeakHeld is the most memory segments being built, sealed
	// (encrypted) and stored held at once: the buffers really in use.
	PeakHeld int64
	// Throttled is how long fetching paused because brokers over their
	// quota asked it to (KIP-219), added up across brokers.
	Throttled time.Duration
}

// partition is one partition being backed up.
type partition struct {
	tp      client.TopicPartition
	topic   *repo.Topic
	meta    *repo.Partition
	next    int64 // everything below is in a segment (open or stored) or a gap
	target  int64 // a snapshot's end; -1 in continuous mode
	done    bool
	aborted map[repo.Aborted]bool
	buf     *segBuf
	w       *repo.SegmentWriter
}

// held is the memory the partition's open segment holds, with what
// storing it will add (segBuf.Cost).
func (p *partition) held() int64 {
	if p.w == nil {
		return 0
	}
	return int64(p.buf.Cost(p.w.Buffered()))
}

type engine struct {
	c     *client.Client
	r     *repo.Repository
	opts  Options
	log   *slog.Logger
	obs   Observer
	m     *repo.Manifest
	seq   int   // last checkpoint written
	old   []int // checkpoints to delete once a newer one is written
	parts []*partition
	byTP  map[client.TopicPartition]*partition
	up    *uploader
	// stored are the segments sealed since the last checkpoint, in order:
	// stored or being stored, not yet in the manifest.
	stored []*stored
	f      *client.Fetcher
	open   int64 // bytes held by open segments
	st     Stats
	// legacyD decompresses legacy wrappers, to check and index them
	legacyD record.Decompressor
	// shared is set when the engine works on a shared run's partitions:
	// its checkpoints are its worker's (workers.go).
	shared *sharedWorker
	// group marks a planned run as shared by that workers group.
	group string
}

func (o Options) withDefaults() (Options, error) {
	if o.Memory <= 0 {
		o.Memory = 256 << 20
	}
	if o.Memory < 8<<20 {
		return o, fmt.Errorf("backup: memory budget %d bytes: at least 8 MiB", o.Memory)
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = int(min(64<<20, o.Memory/8))
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = time.Minute
	}
	if o.Uploads <= 0 {
		o.Uploads = 4
	}
	if o.Mode == "" {
		o.Mode = Snapshot
	}
	if o.Mode != Snapshot && o.Mode != Continuous {
		return o, fmt.Errorf("backup: mode %q: snapshot or continuous", o.Mode)
	}
	switch o.Compression {
	case "", "auto", "zstd", "lz4", "none":
	default:
		return o, fmt.Errorf("backup: compression %q: auto, zstd, lz4 or none", o.Compression)
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return o, nil
}

// Run backs up the selected topics to r. It returns the backup's
// manifest, written: the backup exists. On error the run's newest
// checkpoint stands, and running again resumes from there.
func Run(ctx context.Context, c *client.Client, r *repo.Repository, opts Options) (*repo.Manifest, Stats, error) {
	segmentGiven := opts.SegmentBytes > 0
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, Stats{}, err
	}
	if !segmentGiven && r.Encrypted() {
		// Storing a segment takes it twice over (the plaintext and the
		// buffer it is sealed into): half the size keeps as many
		// uploads, and as much sealing, running at once.
		opts.SegmentBytes /= 2
	}
	if opts.Workers != nil {
		return runShared(ctx, c, r, opts)
	}
	e := newEngine(c, r, opts)
	defer e.up.wait() // no upload outlives the run
	if err := e.plan(ctx); err != nil {
		return nil, e.stats(), err
	}
	return e.run(ctx)
}

func newEngine(c *client.Client, r *repo.Repository, opts Options) *engine {
	e := &engine{c: c, r: r, opts: opts, log: opts.Log, obs: opts.Observer, byTP: map[client.TopicPartition]*partition{}}
	// The pool keeps what segments may hold, half the budget, and a little
	// over: the engine counts a partition's share of a fetch before it
	// seals segments or waits for uploads.
	e.up = newUploader(r, e.obs, opts.Uploads, opts.Memory/2+opts.Memory/16)
	return e
}

// run fetches the planned partitions until they are done (or the run is
// stopped) and writes the manifest.
func (e *engine) run(ctx context.Context) (*repo.Manifest, Stats, error) {
	opts := e.opts
	e.startFetch()
	defer e.f.Close()
	stopped, err := e.follow(ctx)
	e.st.Throttled = e.f.Throttled()
	if err != nil {
		if ctx.Err() == nil {
			// Keep what is done for the next run, if the repository
			// still takes writes.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			if cerr := e.checkpoint(cctx, false); cerr != nil {
				e.log.Warn("backup: no checkpoint after the failure", "err", cerr)
			}
			cancel()
		}
		return nil, e.stats(), err
	}
	if stopped && opts.Mode == Snapshot {
		if err := e.checkpoint(ctx, false); err != nil {
			return nil, e.stats(), err
		}
		return nil, e.stats(), ErrStopped
	}
	if err := e.checkpoint(ctx, true); err != nil {
		return nil, e.stats(), err
	}
	return e.m, e.stats(), nil
}

// stats are the run's figures, with the segment buffers' peak as it
// stands.
func (e *engine) stats() Stats {
	st := e.st
	st.PeakHeld = e.up.pool.peakInUse()
	return st
}

// startFetch starts the fetcher on every partition not done.
func (e *engine) startFetch() {
	e.f = client.NewFetcher(e.c, client.FetchConfig{Isolation: e.opts.Isolation, Budget: e.opts.Memory / 2, OutOfRange: client.OutOfRangeSkipToStart})
	for _, p := range e.parts {
		if !p.done {
			e.f.Assign(p.tp, p.next)
		}
	}
}

// plan starts or resumes the run's manifest and works out every
// partition's range.
func (e *engine) plan(ctx context.Context) error {
	md, err := e.c.RefreshMetadata(ctx, nil)
	if err != nil {
		return fmt.Errorf("backup: metadata: %w", err)
	}
	names := selectTopics(md, e.opts)
	var parent *repo.Manifest
	if !e.opts.Fresh {
		if err := e.resume(ctx); err != nil {
			return err
		}
	}
	if e.m == nil {
		if len(names) == 0 {
			return errors.New("backup: no topic matches")
		}
		started := time.Now().UTC()
		id, err := e.r.NextBackupID(ctx, started)
		if err != nil {
			return fmt.Errorf("backup: name the new backup: %w", err)
		}
		e.m = &repo.Manifest{Format: "ktape-backup", Version: 1, ID: id, Checkpoint: true,
			Started: started.Truncate(time.Second), KtapeVersion: e.opts.Version, Mode: e.opts.Mode, Isolation: "read_uncommitted",
			Source: repo.Source{ClusterID: md.ClusterID, Bootstrap: e.opts.Bootstrap}, Topics: []repo.Topic{}, Groups: []repo.Group{},
			WorkersGroup: e.group}
		if e.opts.Isolation == client.ReadCommitted {
			e.m.Isolation = "read_committed"
		}
		if !e.opts.Full {
			if parent, err = e.parent(ctx, md.ClusterID); err != nil {
				return err
			}
		}
	}
	e.st.ID, e.st.Parent = e.m.ID, e.m.Parent
	if e.m.Source.ClusterID != md.ClusterID {
		return fmt.Errorf("backup: run %s backs up cluster %q, and the brokers given are cluster %q", e.m.ID, e.m.Source.ClusterID, md.ClusterID)
	}
	// Group offsets are read before the end offsets, so that in a
	// snapshot every committed offset is within the backed-up range.
	if e.opts.Mode == Snapshot && !e.st.Resumed {
		if err := e.readGroups(ctx, names); err != nil {
			return err
		}
	}
	if _, err := e.addTopics(ctx, md, names, parent); err != nil {
		return err
	}
	return e.checkpoint(ctx, false) // the plan itself: a resumed snapshot keeps its ends
}

// addTopics adds the named topics' partitions that the run does not have
// yet: to the manifest (continuing parent's, if any) and to the
// partitions fetched, from where the backup has them. It returns them.
func (e *engine) addTopics(ctx context.Context, md *client.Metadata, names []string, parent *repo.Manifest) ([]*partition, error) {
	configs, err := e.c.DescribeTopicConfigs(ctx, names)
	if err != nil {
		return nil, fmt.Errorf("backup: topic configs: %w", err)
	}
	// Every selected topic and partition in the manifest, first; then
	// the pointers into it.
	fresh := map[client.TopicPartition]bool{}
	for _, name := range names {
		tm := md.Topics[name]
		id := hex.EncodeToString(tm.ID[:])
		t := e.topic(name)
		if t == nil {
			e.m.Topics = append(e.m.Topics, repo.Topic{Name: name, ID: id, Partitions: []repo.Partition{}})
			t = &e.m.Topics[len(e.m.Topics)-1]
		} else if t.ID != id {
			return nil, fmt.Errorf("backup: topic %s was deleted and re-created (id %s, now %s) since run %s started: start a new run (--fresh)", name, t.ID, id, e.m.ID)
		}
		t.PartitionsCount = len(tm.Partitions)
		if len(tm.Partitions) > 0 {
			t.ReplicationFactor = len(tm.Partitions[0].Replicas)
		}
		t.Configs = client.NonDefaultTopicConfigs(configs[name])
		for _, pm := range tm.Partitions {
			if t.Partition(pm.Partition) != nil {
				continue
			}
			p := repo.Partition{Partition: pm.Partition, Segments: []repo.SegmentRef{}, Aborted: []repo.Aborted{}, Gaps: []repo.Gap{}, From: -1}
			if pp := parent.Topic(name).Partition(pm.Partition); pp != nil && parent.Topic(name).ID == id {
				p.From, p.To = pp.From, pp.To
				p.Segments = append(p.Segments, pp.Segments...)
				p.Aborted = append(p.Aborted, pp.Aborted...)
				p.Gaps = append(p.Gaps, pp.Gaps...)
			}
			t.Partitions = append(t.Partitions, p)
			fresh[client.TopicPartition{Topic: name, Partition: pm.Partition}] = true
		}
		sort.Slice(t.Partitions, func(i, j int) bool { return t.Partitions[i].Partition < t.Partitions[j].Partition })
	}
	sort.Slice(e.m.Topics, func(i, j int) bool { return e.m.Topics[i].Name < e.m.Topics[j].Name })
	for _, p := range e.parts {
		p.topic = e.topic(p.tp.Topic)
		p.meta = p.topic.Partition(p.tp.Partition)
	}

	// The offsets of every partition new to the run.
	earliest, latest, stable := map[client.TopicPartition]int64{}, map[client.TopicPartition]int64{}, map[client.TopicPartition]int64{}
	for _, name := range names {
		for _, p := range e.topic(name).Partitions {
			tp := client.TopicPartition{Topic: name, Partition: p.Partition}
			if e.byTP[tp] == nil {
				earliest[tp], latest[tp], stable[tp] = client.Earliest, client.Latest, client.Latest
			}
		}
	}
	if len(earliest) == 0 {
		return nil, nil
	}
	lo, err := e.c.ListOffsets(ctx, client.ReadUncommitted, earliest)
	if err != nil {
		return nil, fmt.Errorf("backup: list offsets: %w", err)
	}
	hw, err := e.c.ListOffsets(ctx, client.ReadUncommitted, latest)
	if err != nil {
		return nil, fmt.Errorf("backup: list offsets: %w", err)
	}
	ls, err := e.c.ListOffsets(ctx, client.ReadCommitted, stable)
	if err != nil {
		return nil, fmt.Errorf("backup: list offsets: %w", err)
	}
	var added []*partition
	for _, name := range names {
		t := e.topic(name)
		for j := range t.Partitions {
			pm := &t.Partitions[j]
			tp := client.TopicPartition{Topic: name, Partition: pm.Partition}
			if _, ok := earliest[tp]; !ok {
				continue
			}
			if err := errors.Join(lo[tp].Err, hw[tp].Err, ls[tp].Err); err != nil {
				return nil, fmt.Errorf("backup: %s: offsets: %w", tp, err)
			}
			logStart, hwm, lso := lo[tp].Offset, hw[tp].Offset, ls[tp].Offset
			p := &partition{tp: tp, topic: t, meta: pm, target: -1, aborted: map[repo.Aborted]bool{}}
			for _, a := range pm.Aborted {
				p.aborted[a] = true
			}
			if pm.From < 0 { // new to the repository
				pm.From, pm.To = logStart, logStart
			}
			done := pm.To
			if logStart > pm.To {
				pm.Gaps = append(pm.Gaps, repo.Gap{From: pm.To, To: logStart, Reason: "retention"})
				e.st.Gaps++
				e.log.Warn("backup: offsets were deleted before they were backed up", "partition", tp.String(), "from", pm.To, "to", logStart-1)
				pm.To = logStart
			}
			pm.LogStart = logStart
			if e.opts.Mode == Snapshot {
				if fresh[tp] {
					pm.HighWatermark, pm.LastStableOffset = hwm, lso
				}
				p.target = pm.HighWatermark
				if e.opts.Isolation == client.ReadCommitted {
					p.target = pm.LastStableOffset
				}
				if p.target < pm.To {
					e.log.Warn("backup: the partition ends before where the backup has it: its log was truncated; nothing more is backed up from it",
						"partition", tp.String(), "log_end", p.target, "backed_up_to", pm.To)
					p.target = pm.To
				}
			} else {
				pm.HighWatermark, pm.LastStableOffset = hwm, lso
				if hwm < pm.To {
					return nil, fmt.Errorf("backup: %s ends at %d, before %d where the backup has it: its log was truncated; start a full backup (--full --fresh)", tp, hwm, pm.To)
				}
			}
			p.next = pm.To
			p.done = p.target >= 0 && p.next >= p.target
			e.parts = append(e.parts, p)
			e.byTP[tp] = p
			added = append(added, p)
			e.obs.Planned(PartitionPlan{TopicPartition: tp, From: p.next, Done: done, To: p.target, HighWatermark: hwm})
		}
	}
	e.st.Partitions = len(e.parts)
	return added, nil
}

// discover adds to a continuous run the topics and partitions created
// since it started (or last looked) that the selection matches.
func (e *engine) discover(ctx context.Context) error {
	md, err := e.c.RefreshMetadata(ctx, nil)
	if err != nil {
		return fmt.Errorf("backup: metadata: %w", err)
	}
	names := selectTopics(md, e.opts)
	news := false
	for _, name := range names {
		for _, pm := range md.Topics[name].Partitions {
			news = news || e.byTP[client.TopicPartition{Topic: name, Partition: pm.Partition}] == nil
		}
	}
	if !news {
		return nil
	}
	added, err := e.addTopics(ctx, md, names, nil)
	if err != nil {
		return err
	}
	for _, p := range added {
		e.log.Info("backup: following a new partition", "partition", p.tp.String(), "from", p.next)
		e.f.Assign(p.tp, p.next)
	}
	return nil
}

// resume picks up the newest unfinished run, if any.
func (e *engine) resume(ctx context.Context) error {
	runs, err := e.r.Unfinished(ctx)
	if err != nil {
		return fmt.Errorf("backup: list unfinished runs: %w", err)
	}
	// The newest run of one process; runs shared by a workers group are
	// their workers' to resume.
	var run repo.Run
	var seq int
	var m *repo.Manifest
	for i := len(runs) - 1; i >= 0 && m == nil; i-- {
		run = runs[i]
		seq = run.Checkpoints[len(run.Checkpoints)-1]
		if m, err = e.r.Checkpoint(ctx, run.ID, seq); err != nil {
			return fmt.Errorf("backup: resume run %s: %w", run.ID, err)
		}
		if m.WorkersGroup != "" {
			m = nil
		}
	}
	if m == nil {
		return nil
	}
	if m.Mode != e.opts.Mode || m.Isolation != isolationName(e.opts.Isolation) {
		return fmt.Errorf("backup: the repository holds an unfinished %s %s run, %s: resume it with the same mode and isolation, or start a new run (--fresh)", m.Mode, m.Isolation, run.ID)
	}
	e.m, e.seq, e.old = m, seq, run.Checkpoints
	e.st.Resumed = true
	e.log.Info("backup: resuming an unfinished run from its newest checkpoint", "run", run.ID, "checkpoint", seq)
	return nil
}

// parent returns the newest complete backup of the same cluster, which
// this one continues; nil when there is none.
func (e *engine) parent(ctx context.Context, clusterID string) (*repo.Manifest, error) {
	ids, err := e.r.Backups(ctx)
	if err != nil {
		return nil, fmt.Errorf("backup: list backups: %w", err)
	}
	for i := len(ids) - 1; i >= 0; i-- {
		m, err := e.r.Manifest(ctx, ids[i])
		if err != nil {
			return nil, fmt.Errorf("backup: read the previous backup: %w", err)
		}
		if m.Source.ClusterID == clusterID {
			e.m.Parent = m.ID
			e.log.Info("backup: continuing from the previous backup", "parent", m.ID)
			return m, nil
		}
	}
	return nil, nil
}

func isolationName(i client.Isolation) string {
	if i == client.ReadCommitted {
		return "read_committed"
	}
	return "read_uncommitted"
}

func (e *engine) topic(name string) *repo.Topic { return e.m.Topic(name) }

// follow fetches until every partition reaches its end (snapshot), or
// until Stop is closed; it reports whether it was stopped.
func (e *engine) follow(ctx context.Context) (stopped bool, err error) {
	stopCtx, stop := context.WithCancel(ctx)
	defer stop()
	if e.opts.Stop != nil {
		go func() {
			select {
			case <-e.opts.Stop:
				stop()
			case <-stopCtx.Done():
			}
		}()
	}
	remaining := 0
	for _, p := range e.parts {
		if !p.done {
			remaining++
		}
	}
	nextCheckpoint := time.Now().Add(e.opts.CheckpointInterval)
	for remaining > 0 || e.opts.Mode == Continuous {
		if time.Now().After(nextCheckpoint) {
			if err := e.checkpoint(ctx, false); err != nil {
				return false, err
			}
			if e.opts.Mode == Continuous {
				if err := e.discover(ctx); err != nil {
					return false, err
				}
			}
			nextCheckpoint = time.Now().Add(e.opts.CheckpointInterval)
		}
		pollCtx, cancel := context.WithDeadline(stopCtx, nextCheckpoint)
		start := time.Now()
		fetch, err := e.f.Poll(pollCtx)
		cancel()
		wait := time.Since(start)
		switch {
		case ctx.Err() != nil:
			return false, ctx.Err()
		case stopCtx.Err() != nil:
			if fetch != nil {
				fetch.Release()
			}
			return true, nil
		case errors.Is(err, context.DeadlineExceeded):
			continue
		case err != nil:
			return false, fmt.Errorf("backup: %w", err)
		}
		for i := range fetch.Partitions {
			fp := &fetch.Partitions[i]
			p := e.byTP[fp.TopicPartition]
			if p == nil || p.done {
				continue
			}
			if err := e.take(ctx, p, fp, wait); err != nil {
				fetch.Release()
				return false, err
			}
			if p.done {
				remaining--
				e.f.Unassign(p.tp)
			}
			if stopCtx.Err() != nil && ctx.Err() == nil {
				// Stopped part-way through a response: what was
				// taken is checkpointed, the rest fetched again.
				fetch.Release()
				return true, nil
			}
		}
		fetch.Release()
	}
	return false, nil
}

// take adds one partition's share of a fetch to its open segment.
func (e *engine) take(ctx context.Context, p *partition, fp *client.FetchedPartition, wait time.Duration) error {
	if fp.Err != nil {
		return fmt.Errorf("backup: %s: %w", fp.TopicPartition, fp.Err)
	}
	limit := p.target
	if limit < 0 {
		limit = 1<<63 - 1
	}
	if g := fp.Gap; g != nil && g.To > p.next {
		from, to := max(g.From, p.next), min(g.To, limit)
		if from < to {
			p.meta.Gaps = append(p.meta.Gaps, repo.Gap{From: from, To: to, Reason: "retention"})
			e.st.Gaps++
			e.log.Warn("backup: offsets were deleted before they were backed up", "partition", p.tp.String(), "from", from, "to", to-1)
			p.next = to
		}
	}
	for _, a := range fp.Aborted {
		ab := repo.Aborted{ProducerID: a.ProducerID, FirstOffset: a.FirstOffset}
		if a.FirstOffset < limit && !p.aborted[ab] {
			p.aborted[ab] = true
			p.meta.Aborted = append(p.meta.Aborted, ab)
		}
	}
	var ev FetchEvent
	it := record.NewLogIter(fp.Records)
	for it.Next() {
		b := it.Batch()
		if b.Magic() < 2 {
			// A legacy message: its offset is its last message's, so
			// it is skipped when below p.next, and its first
			// message's is checked against limit once it is parsed.
			if b.BaseOffset() < p.next {
				continue
			}
			n, last, err := e.addLegacy(p, b, limit)
			if err != nil {
				return err
			}
			if n < 0 {
				break
			}
			ev.Batches++
			ev.Records += int64(n)
			ev.Bytes += int64(len(b))
			p.next = last + 1
			continue
		}
		if b.BaseOffset() >= limit {
			break
		}
		if b.LastOffset() < p.next {
			continue // fetched before, or below the log start asked for
		}
		before := p.held()
		if err := e.add(p, b, nil); err != nil {
			return err
		}
		e.open += p.held() - before
		ev.Batches++
		ev.Records += int64(b.NumRecords())
		ev.Bytes += int64(len(b))
		p.next = b.LastOffset() + 1
	}
	if it.Err() != nil {
		return fmt.Errorf("backup: %s: %w", fp.TopicPartition, it.Err())
	}
	p.next = max(p.next, min(fp.NextOffset, limit))
	if p.target < 0 {
		p.meta.HighWatermark, p.meta.LastStableOffset = max(p.meta.HighWatermark, fp.HighWatermark), max(p.meta.LastStableOffset, fp.LastStableOffset)
	}
	p.meta.LogStart = max(p.meta.LogStart, fp.LogStartOffset)
	p.done = p.target >= 0 && p.next >= p.target
	e.st.Batches += ev.Batches
	e.st.Records += ev.Records
	e.st.Bytes += ev.Bytes
	ev.TopicPartition, ev.Next, ev.HighWatermark, ev.Wait = p.tp, p.next, fp.HighWatermark, wait
	e.obs.Fetched(ev)
	if p.w != nil && p.buf.Len() >= e.opts.SegmentBytes {
		if err := e.seal(ctx, p); err != nil {
			return err
		}
	}
	return e.balance(ctx)
}

// add appends a batch to the partition's open segment, opening one; a legacy
// message comes with its description (legacy), checked already.
func (e *engine) add(p *partition, b record.Batch, legacy *record.LegacyEntry) error {
	if p.w == nil {
		var framing repo.Framing
		switch e.opts.Compression {
		case "zstd":
			framing = repo.FramingZstd
		case "lz4":
			framing = repo.FramingLZ4
		case "none":
			framing = repo.FramingNone
		default:
			framing = repo.AutoFraming(b)
		}
		p.buf = e.up.buffer()
		var err error
		if p.w, err = repo.NewSegmentWriter(p.buf, framing, 0); err != nil {
			return err
		}
		p.w.DeferHash() // the uploader hashes it
		e.up.reuseEntries(p.w)
	}
	if legacy != nil {
		if err := p.w.AppendLegacyChecked(b, *legacy); err != nil {
			return fmt.Errorf("backup: %s: %w", p.tp, err)
		}
		return nil
	}
	if err := p.w.AppendChecked(b); err != nil { // the fetcher checked its CRC
		return fmt.Errorf("backup: %s: %w", p.tp, err)
	}
	return nil
}

// addLegacy appends a top-level legacy message, stored as fetched, to the
// partition's open segment. It returns the number of messages it holds
// and its last offset, or n = -1 when its first message is at or past
// limit (it is not stored).
func (e *engine) addLegacy(p *partition, m record.Batch, limit int64) (n int, last int64, err error) {
	le, err := record.ParseLegacyEntry(m, &e.legacyD)
	if err != nil {
		return 0, 0, fmt.Errorf("backup: %s: legacy message at offset %d: %w", p.tp, m.BaseOffset(), err)
	}
	if le.BaseOffset >= limit {
		return -1, 0, nil
	}
	before := p.held()
	if err := e.add(p, m, &le); err != nil {
		return 0, 0, err
	}
	e.open += p.held() - before
	return le.Messages, le.LastOffset, nil
}

// seal closes the partition's open segment, if any, and hands it to the
// uploader, which hashes and names it; checkpoint puts it in the manifest
// once it is stored.
func (e *engine) seal(ctx context.Context, p *partition) error {
	if p.w == nil {
		return nil
	}
	e.open -= p.held() // as counted; the uploader counts the buffer from here
	seg, err := p.w.Close()
	if err != nil {
		return fmt.Errorf("backup: %s: %w", p.tp, err)
	}
	s, err := e.up.put(ctx, p, p.buf, seg)
	if err != nil {
		return err
	}
	e.stored = append(e.stored, s)
	e.st.Segments++
	e.st.StoredBytes += int64(seg.StoredLen)
	p.w, p.buf = nil, nil
	return nil
}

// balance keeps segments being built and being stored within half the
// memory budget: it seals the largest open segments early, and waits for
// uploads when they hold the rest.
//
// Open segments count what storing them takes (in an encrypted
// repository, the buffer each is sealed into too), so that sealing one
// moves its memory to the uploader and adds nothing.
func (e *engine) balance(ctx context.Context) error {
	limit := e.opts.Memory / 2
	for {
		uploading := e.up.held()
		switch {
		case e.open+uploading <= limit:
			return nil
		case uploading < limit/2:
			// Open segments hold the most: seal the largest, so that
			// its upload frees it. (With uploads holding half or more,
			// waiting for them frees memory sooner, and lets open
			// segments grow to their size.)
			var big *partition
			for _, p := range e.parts {
				if h := p.held(); h > 0 && (big == nil || h > big.held()) {
					big = p
				}
			}
			if err := e.seal(ctx, big); err != nil {
				return err
			}
		default:
			if err := e.up.waitOne(); err != nil {
				return err
			}
		}
	}
}

// checkpoint seals every open segment, waits until every segment is
// stored, and writes the run's next checkpoint or, when final, the
// backup's manifest (then deletes the run's checkpoints).
func (e *engine) checkpoint(ctx context.Context, final bool) error {
	start := time.Now()
	for _, p := range e.parts {
		if err := e.seal(ctx, p); err != nil {
			return err
		}
	}
	if err := e.up.wait(); err != nil {
		return err
	}
	// Every segment sealed is stored: into the manifest, in the order they
	// were sealed, which is each partition's offset order.
	for i, s := range e.stored {
		s.p.meta.Segments = append(s.p.meta.Segments, s.ref)
		e.stored[i] = nil
	}
	e.stored = e.stored[:0]
	for _, p := range e.parts {
		p.meta.To = p.next
		sort.Slice(p.meta.Aborted, func(i, j int) bool { return p.meta.Aborted[i].FirstOffset < p.meta.Aborted[j].FirstOffset })
	}
	if e.opts.Mode == Continuous && !e.opts.SkipGroups {
		if err := e.readGroups(ctx, e.topicNames()); err != nil {
			return err
		}
	}
	e.m.Finished = time.Now().UTC().Truncate(time.Second)
	if final {
		e.m.Checkpoint = false
		if err := e.r.PutManifest(ctx, e.m); err != nil {
			e.m.Checkpoint = true
			return fmt.Errorf("backup: manifest: %w", err)
		}
		e.obs.Checkpointed(CheckpointEvent{Final: true, Took: time.Since(start)})
		if err := e.r.DeleteCheckpoints(ctx, e.m.ID, append(e.old, e.seq)); err != nil {
			e.log.Warn("backup: could not delete the finished run's checkpoints", "err", err)
		}
		return nil
	}
	if e.shared != nil {
		seq, err := e.shared.put(ctx, e)
		if err != nil {
			return err
		}
		e.st.Checkpoints++
		e.obs.Checkpointed(CheckpointEvent{Sequence: seq, Took: time.Since(start)})
		return nil
	}
	if e.seq > 0 {
		e.old = append(e.old, e.seq)
	}
	e.seq++
	if err := e.r.PutCheckpoint(ctx, e.m, e.seq); err != nil {
		return fmt.Errorf("backup: checkpoint %d: %w", e.seq, err)
	}
	e.st.Checkpoints++
	e.obs.Checkpointed(CheckpointEvent{Sequence: e.seq, Took: time.Since(start)})
	if err := e.r.DeleteCheckpoints(ctx, e.m.ID, e.old); err != nil {
		e.log.Warn("backup: could not delete older checkpoints", "err", err)
	} else {
		e.old = e.old[:0]
	}
	return nil
}

func (e *engine) topicNames() []string {
	names := make([]string, len(e.m.Topics))
	for i, t := range e.m.Topics {
		names[i] = t.Name
	}
	return names
}

// readGroups records the committed offsets of every group for the
// backed-up topics.
func (e *engine) readGroups(ctx context.Context, topics []string) error {
	if e.opts.SkipGroups {
		return nil
	}
	listed, err := e.c.ListGroups(ctx)
	if err != nil {
		return fmt.Errorf("backup: list consumer groups (leave them out with --skip-groups): %w", err)
	}
	names := make([]string, 0, len(listed))
	for _, g := range listed {
		names = append(names, g.Group)
	}
	sort.Strings(names)
	offsets := map[string]map[client.TopicPartition]client.GroupOffset{}
	if len(names) > 0 {
		if offsets, err = e.c.FetchGroupOffsets(ctx, names); err != nil {
			return fmt.Errorf("backup: consumer group offsets (leave them out with --skip-groups): %w", err)
		}
	}
	backed := map[string]bool{}
	for _, t := range topics {
		backed[t] = true
	}
	groups := []repo.Group{}
	for _, name := range names {
		g := repo.Group{Group: name}
		for tp, o := range offsets[name] {
			if !backed[tp.Topic] || o.Offset < 0 {
				continue
			}
			if o.Err != nil {
				return fmt.Errorf("backup: consumer group %s: %s: %w", name, tp, o.Err)
			}
			g.Offsets = append(g.Offsets, repo.GroupOffset{Topic: tp.Topic, Partition: tp.Partition, Offset: o.Offset, LeaderEpoch: o.LeaderEpoch, Metadata: o.Metadata})
		}
		if len(g.Offsets) == 0 {
			continue
		}
		slices.SortFunc(g.Offsets, func(a, b repo.GroupOffset) int {
			if c := strings.Compare(a.Topic, b.Topic); c != 0 {
				return c
			}
			return int(a.Partition - b.Partition)
		})
		groups = append(groups, g)
	}
	e.m.Groups = groups
	e.st.Groups = len(groups)
	return nil
}

// selectTopics returns the names of the topics opts selects, sorted.
func selectTopics(md *client.Metadata, opts Options) []string {
	topics, exclude := anchored(opts.Topics), anchored(opts.Exclude)
	var out []string
	for name, t := range md.Topics {
		if t.Err != nil {
			continue
		}
		selected := len(opts.Topics) == 0 && !strings.HasPrefix(name, "__")
		for i, re := range topics {
			if re.MatchString(name) && (!strings.HasPrefix(name, "__") || opts.Topics[i].String() == regexp.QuoteMeta(name) || opts.Topics[i].String() == name) {
				selected = true
			}
		}
		for _, re := range exclude {
			if re.MatchString(name) {
				selected = false
			}
		}
		if selected {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// anchored returns the expressions made to match whole names only.
func anchored(res []*regexp.Regexp) []*regexp.Regexp {
	out := make([]*regexp.Regexp, len(res))
	for i, re := range res {
		out[i] = regexp.MustCompile(`^(?:` + re.String() + `)$`) // re compiled, so this does
	}
	return out
}
