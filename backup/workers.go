package backup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
)

// Workers shares one snapshot backup between several processes: each
// joins the Kafka group Group, and backs up the partitions the group
// assigns it. The coordination is Kafka's (the classic group protocol,
// client.GroupMember); the repository holds the rest:
//
//   - the run's plan, made once by the group's leader: every partition's
//     range and snapshot end, topic configs and group offsets, written as
//     checkpoint 1 of a run marked with the group's name. Later leaders
//     find it there, so every generation of the group shares one run;
//   - each worker's progress, in worker checkpoints (repo.WorkerCheckpointRef)
//     that only it writes, holding only its partitions. A partition that
//     moves to another worker in a rebalance is checkpointed by the old
//     owner before it rejoins (or, if it died, its last checkpoint
//     stands), and the new owner continues from the furthest checkpoint
//     of it (repo.BestPartitions): nothing is fetched twice into the
//     backup and nothing is skipped;
//   - the manifest, written by whichever worker finds every partition at
//     its snapshot end (or by Finalize), after which every worker returns it.
//
// Two owners of one partition at once (a worker cut off from the group
// that has not yet noticed it was removed) cannot damage the backup:
// segments are immutable and content-named, each worker checkpoint is a
// complete account of its partitions written by one worker, and the
// furthest one wins. At worst work is done twice.
type Workers struct {
	// Group is the Kafka group the workers join. It names the shared run
	// too: workers started with the same group share one backup.
	Group string
	// Name is this worker's name in the repository, unique among the
	// group's workers; default <host>-<pid>-<random>.
	Name string
	// InstanceID makes the worker a static member (KIP-345): restarted
	// within the session timeout, it gets its partitions back without a
	// rebalance.
	InstanceID string
	// SessionTimeout, RebalanceTimeout and HeartbeatInterval are the
	// group's; zero takes client.GroupConfig's defaults.
	SessionTimeout, RebalanceTimeout, HeartbeatInterval time.Duration
	// Poll is how often a worker whose partitions are done looks whether
	// the others' are; default 2 s.
	Poll time.Duration
}

// ErrIncomplete is returned by Finalize when some partition has not
// reached its snapshot end.
var ErrIncomplete = errors.New("backup: the shared run is not complete")

// sharedWorker is one process's part in a shared run, across the group's
// generations.
type sharedWorker struct {
	c       *client.Client
	r       *repo.Repository
	opts    Options
	w       Workers
	started time.Time
	// run is the shared run of the last assignment.
	run string
	// seq is the sequence of the worker's last checkpoint, last it and
	// lastParts the partitions it held: it is deleted when a newer one
	// holds them all.
	seq       int
	last      *repo.WorkerCheckpointRef
	lastParts map[client.TopicPartition]bool
	st        Stats
	assigned  map[client.TopicPartition]bool
}

var workerNameUnsafe = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// defaultWorkerName is <host>-<pid>-<4 random hex digits>.
func defaultWorkerName() string {
	host, _ := os.Hostname()
	host = strings.Trim(workerNameUnsafe.ReplaceAllString(host, "-"), "-")
	if host == "" {
		host = "worker"
	}
	var b [2]byte
	rand.Read(b[:])
	return fmt.Sprintf("%.80s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// runShared is Run for a worker of a shared run.
func runShared(ctx context.Context, c *client.Client, r *repo.Repository, opts Options) (*repo.Manifest, Stats, error) {
	w := *opts.Workers
	switch {
	case w.Group == "":
		return nil, Stats{}, errors.New("backup: a workers group needs a name")
	case opts.Mode != Snapshot:
		return nil, Stats{}, errors.New("backup: a workers group backs up snapshots only; run continuous backups of disjoint topics per process instead")
	case opts.Fresh:
		return nil, Stats{}, errors.New("backup: --fresh does not apply to a workers group: workers with a new group name start a new shared run")
	}
	if w.Name == "" {
		w.Name = defaultWorkerName()
	}
	if !repo.ValidWorkerName(w.Name) {
		return nil, Stats{}, fmt.Errorf("backup: worker name %q: letters, digits, '.', '_' and '-', at most 128", w.Name)
	}
	if w.Poll <= 0 {
		w.Poll = 2 * time.Second
	}
	sw := &sharedWorker{c: c, r: r, opts: opts, w: w, started: time.Now(), assigned: map[client.TopicPartition]bool{}}
	member, err := c.NewGroupMember(client.GroupConfig{Group: w.Group, InstanceID: w.InstanceID, SessionTimeout: w.SessionTimeout,
		RebalanceTimeout: w.RebalanceTimeout, HeartbeatInterval: w.HeartbeatInterval, Plan: sw.plan, Log: opts.Log})
	if err != nil {
		return nil, Stats{}, fmt.Errorf("backup: workers group %s: %w", w.Group, err)
	}
	defer member.Close()
	m, err := sw.loop(ctx, member)
	leaveGroup(ctx, member, m != nil, w.InstanceID, opts.Log)
	sw.st.Partitions = len(sw.assigned)
	if m != nil {
		sw.st.ID, sw.st.Parent, sw.st.Groups = m.ID, m.Parent, len(m.Groups)
	}
	return m, sw.st, err
}

// leaveGroup ends a worker's membership. A dynamic member that stops,
// however (done, stopped, abandoned, failed), leaves at once, so that its
// partitions move now rather than after a session timeout: its last
// checkpoint stands for them. A static member leaves only when the work
// is done: stopped or failed, it is expected back (a restarted pod) and
// gets its partitions back without a rebalance (KIP-345); if it does not
// come back, the session timeout moves them.
func leaveGroup(ctx context.Context, member *client.GroupMember, done bool, instanceID string, log *slog.Logger) {
	if instanceID != "" && !done {
		return
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := member.Leave(lctx); err != nil {
		log.Warn("could not leave the workers group", "err", err)
	}
}

// loop joins the group and works on each generation's assignment until
// the shared run is complete.
func (sw *sharedWorker) loop(ctx context.Context, member *client.GroupMember) (*repo.Manifest, error) {
	log := sw.opts.Log
	for {
		if sw.run != "" {
			if m, err := sw.finished(ctx, sw.run); m != nil || err != nil {
				return m, err
			}
		}
		a, err := member.Join(ctx)
		if err != nil {
			return nil, fmt.Errorf("backup: workers group %s: %w", sw.w.Group, err)
		}
		run := string(a.Shared)
		if sw.run != "" && run != sw.run {
			// The leader handed out another run: this worker's is over
			// (finished while it rejoined), and it returns that one.
			if m, err := sw.finished(ctx, sw.run); m != nil || err != nil {
				return m, err
			}
		}
		sw.run = run
		if m, err := sw.finished(ctx, run); m != nil || err != nil {
			return m, err
		}
		plan, err := sw.loadPlan(ctx, run)
		if err != nil {
			return nil, err
		}
		sw.st.ID, sw.st.Parent, sw.st.Groups = plan.ID, plan.Parent, len(plan.Groups)
		log.Info("backup: assigned partitions by the workers group", "group", sw.w.Group, "run", run, "generation", a.Generation,
			"members", a.Members, "leader", a.Leader, "partitions", len(a.Items))
		revoked, err := sw.work(ctx, member.Revoked(), plan, a.Items)
		if err != nil {
			return nil, err
		}
		if revoked {
			continue
		}
		m, err := sw.await(ctx, member, plan)
		if m != nil || err != nil {
			return m, err
		}
	}
}

// plan runs on the group's leader: it hands out the group's shared run,
// planning it first when there is none.
func (sw *sharedWorker) plan(ctx context.Context) ([]client.TopicPartition, []byte, error) {
	if sw.run != "" {
		// The run this worker was part of, finished: its members return
		// it.
		if m, err := sw.finished(ctx, sw.run); err != nil {
			return nil, nil, err
		} else if m != nil {
			return nil, []byte(m.ID), nil
		}
	}
	plan, err := findSharedRun(ctx, sw.r, sw.w.Group)
	if err != nil {
		return nil, nil, err
	}
	if plan == nil && sw.run != "" {
		// This worker's run may have been finished since it looked.
		if m, err := sw.finished(ctx, sw.run); err != nil {
			return nil, nil, err
		} else if m != nil {
			return nil, []byte(m.ID), nil
		}
	}
	if plan == nil {
		// Workers that start a little apart, or a worker restarted, may
		// join after the others finished the group's run: they return it
		// rather than start the group's next backup.
		if m, err := recentlyFinished(ctx, sw.r, sw.w.Group, time.Now()); err != nil {
			return nil, nil, err
		} else if m != nil {
			return nil, []byte(m.ID), nil
		}
		opts := sw.opts
		opts.Fresh, opts.Workers, opts.Observer = true, nil, nopObserver{}
		e := newEngine(sw.c, sw.r, opts)
		e.group = sw.w.Group
		err := e.plan(ctx)
		if werr := e.up.wait(); err == nil {
			err = werr
		}
		if err != nil {
			return nil, nil, err
		}
		plan = e.m
		// Two leaders of successive generations may both have found no
		// run and planned one: the oldest is the group's, and this one
		// goes.
		if oldest, err := findSharedRun(ctx, sw.r, sw.w.Group); err != nil {
			return nil, nil, err
		} else if oldest != nil && oldest.ID != plan.ID {
			if err := sw.r.DeleteRun(ctx, plan.ID); err != nil {
				sw.opts.Log.Warn("backup: could not delete a plan another leader's made redundant", "run", plan.ID, "err", err)
			}
			plan = oldest
		}
		sw.opts.Log.Info("backup: planned a run shared by the workers group", "group", sw.w.Group, "run", plan.ID, "partitions", len(e.parts))
	}
	var items []client.TopicPartition
	for _, t := range plan.Topics {
		for _, p := range t.Partitions {
			items = append(items, client.TopicPartition{Topic: t.Name, Partition: p.Partition})
		}
	}
	return items, []byte(plan.ID), nil
}

// RejoinWindow is how long after a group's run finished a worker that
// joins the group takes it for its own (and prints it) instead of starting
// the group's next backup. It is judged by the manifest's finish time
// against the worker's clock, so it must be far longer than the skew
// between hosts.
const RejoinWindow = 10 * time.Minute

// recentlyFinished returns the newest backup of group if it finished
// within RejoinWindow of now; nil otherwise. Only the newest few
// backups are read: such a run is among them.
func recentlyFinished(ctx context.Context, r *repo.Repository, group string, now time.Time) (*repo.Manifest, error) {
	ids, err := r.Backups(ctx)
	if err != nil {
		return nil, fmt.Errorf("backup: list backups: %w", err)
	}
	for i := len(ids) - 1; i >= 0 && i >= len(ids)-8; i-- {
		m, err := r.Manifest(ctx, ids[i])
		if err != nil {
			return nil, fmt.Errorf("backup: read backup %s: %w", ids[i], err)
		}
		if m.WorkersGroup == group {
			if now.Sub(m.Finished) < RejoinWindow {
				return m, nil
			}
			return nil, nil
		}
	}
	return nil, nil
}

// findSharedRun returns the plan of the oldest unfinished run of group;
// nil when there is none.
func findSharedRun(ctx context.Context, r *repo.Repository, group string) (*repo.Manifest, error) {
	runs, err := r.Unfinished(ctx)
	if err != nil {
		return nil, fmt.Errorf("backup: list unfinished runs: %w", err)
	}
	for _, run := range runs {
		if run.Checkpoints[0] != 1 {
			continue // a run of one process that deleted its first checkpoint
		}
		m, err := r.Checkpoint(ctx, run.ID, 1)
		if errors.Is(err, storage.ErrNotFound) {
			continue // finished, or moved on, since the listing
		}
		if err != nil {
			return nil, fmt.Errorf("backup: read run %s: %w", run.ID, err)
		}
		if m.WorkersGroup == group {
			return m, nil
		}
	}
	return nil, nil
}

// loadPlan reads the plan of shared run id.
func (sw *sharedWorker) loadPlan(ctx context.Context, id string) (*repo.Manifest, error) {
	plan, err := sw.r.Checkpoint(ctx, id, 1)
	if err != nil {
		return nil, fmt.Errorf("backup: the plan of shared run %s: %w", id, err)
	}
	if plan.WorkersGroup != sw.w.Group {
		return nil, fmt.Errorf("backup: run %s is not shared by workers group %s (its group: %q)", id, sw.w.Group, plan.WorkersGroup)
	}
	if plan.Mode != sw.opts.Mode || plan.Isolation != isolationName(sw.opts.Isolation) {
		return nil, fmt.Errorf("backup: shared run %s is a %s %s backup: start every worker of group %s with the same options", id, plan.Mode, plan.Isolation, sw.w.Group)
	}
	return plan, nil
}

// finished returns run id's manifest when it is written; nil when not.
func (sw *sharedWorker) finished(ctx context.Context, id string) (*repo.Manifest, error) {
	m, err := sw.r.Manifest(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("backup: read the manifest of %s: %w", id, err)
	}
	return m, nil
}

// snapshotEnd is where the plan's partition p ends.
func snapshotEnd(plan *repo.Manifest, p *repo.Partition) int64 {
	end := p.HighWatermark
	if plan.Isolation == "read_committed" {
		end = p.LastStableOffset
	}
	return max(end, p.From)
}

// work backs up the worker's assigned partitions until they reach their
// snapshot ends or the assignment is revoked (or the worker is stopped),
// and checkpoints them.
func (sw *sharedWorker) work(ctx context.Context, revokedCh <-chan struct{}, plan *repo.Manifest, items []client.TopicPartition) (revoked bool, err error) {
	best, read, err := sw.r.BestPartitions(ctx, plan)
	if err != nil {
		return false, fmt.Errorf("backup: shared run %s: %w", plan.ID, err)
	}
	// A worker restarted under its old name (a pod restarted in place)
	// numbers its checkpoints after the ones it wrote before.
	for _, ref := range read {
		if ref.Worker == sw.w.Name {
			sw.seq = max(sw.seq, ref.Sequence)
		}
	}
	// The engine stops when the assignment is revoked, or the worker is
	// stopped.
	stop, quit := make(chan struct{}), make(chan struct{})
	var stopped atomic.Bool // by opts.Stop, not by a revocation
	go func() {
		select {
		case <-revokedCh:
		case <-sw.opts.Stop:
			stopped.Store(true)
		case <-ctx.Done():
		case <-quit:
			return
		}
		close(stop)
	}()
	defer close(quit)

	if err := sw.checkTopicIDs(ctx, plan, items); err != nil {
		return false, err
	}
	opts := sw.opts
	opts.Stop = stop
	e := newEngine(sw.c, sw.r, opts)
	defer e.up.wait()
	e.shared = sw
	e.m = cloneManifest(plan)
	e.st.ID, e.st.Parent = plan.ID, plan.Parent
	for _, tp := range items {
		t := e.m.Topic(tp.Topic)
		pm := t.Partition(tp.Partition)
		b := best[tp.Topic][tp.Partition]
		if pm == nil || b == nil {
			return false, fmt.Errorf("backup: the workers group assigned %s, which shared run %s does not plan", tp, plan.ID)
		}
		*pm = clonePartition(b)
		p := &partition{tp: tp, topic: t, meta: pm, target: snapshotEnd(plan, plan.Topic(tp.Topic).Partition(tp.Partition)), aborted: map[repo.Aborted]bool{}}
		for _, a := range pm.Aborted {
			p.aborted[a] = true
		}
		p.next = pm.To
		p.done = p.next >= p.target
		e.parts = append(e.parts, p)
		e.byTP[tp] = p
		sw.assigned[tp] = true
		e.obs.Planned(PartitionPlan{TopicPartition: tp, From: p.next, Done: p.next, To: p.target, HighWatermark: pm.HighWatermark})
	}
	e.st.Partitions = len(e.parts)
	defer func() { sw.add(e.stats()) }()
	e.startFetch()
	defer e.f.Close()
	halted, err := e.follow(ctx)
	e.st.Throttled = e.f.Throttled()
	if err != nil {
		if ctx.Err() == nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			if cerr := e.checkpoint(cctx, false); cerr != nil {
				e.log.Warn("backup: no checkpoint after the failure", "err", cerr)
			}
			cancel()
		}
		return false, err
	}
	// Always: the partitions' progress is what the next owner, and the
	// manifest, start from.
	if err := e.checkpoint(ctx, false); err != nil {
		return false, err
	}
	switch {
	case !halted:
		return false, nil
	case stopped.Load():
		return false, ErrStopped
	default:
		return true, nil
	}
}

// checkTopicIDs refuses to continue the plan's topics of items that were
// deleted and created again since it was made: the fetcher would read
// the new topic's log into the old one's account.
func (sw *sharedWorker) checkTopicIDs(ctx context.Context, plan *repo.Manifest, items []client.TopicPartition) error {
	var names []string
	for _, tp := range items {
		if len(names) == 0 || names[len(names)-1] != tp.Topic {
			names = append(names, tp.Topic)
		}
	}
	if len(names) == 0 {
		return nil
	}
	md, err := sw.c.RefreshMetadata(ctx, names)
	if err != nil {
		return fmt.Errorf("backup: metadata: %w", err)
	}
	for _, name := range names {
		t := md.Topics[name]
		if t == nil || t.Err != nil {
			return fmt.Errorf("backup: topic %s of shared run %s is gone from the cluster", name, plan.ID)
		}
		if id := hex.EncodeToString(t.ID[:]); id != plan.Topic(name).ID {
			return fmt.Errorf("backup: topic %s was deleted and re-created (id %s, now %s) since shared run %s started: start the workers with a new group name", name, plan.Topic(name).ID, id, plan.ID)
		}
	}
	return nil
}

// put writes the worker checkpoint of e's partitions, and deletes the
// worker's previous one when this one holds all it held.
func (sw *sharedWorker) put(ctx context.Context, e *engine) (int, error) {
	m := *e.m
	// The group offsets are the plan's, which the manifest takes; in a
	// worker checkpoint they would name topics it does not hold.
	m.Topics, m.Groups = nil, []repo.Group{}
	owned := map[client.TopicPartition]bool{}
	for _, t := range e.m.Topics {
		var ps []repo.Partition
		for _, p := range t.Partitions {
			tp := client.TopicPartition{Topic: t.Name, Partition: p.Partition}
			if e.byTP[tp] != nil {
				ps = append(ps, p)
				owned[tp] = true
			}
		}
		if len(ps) > 0 {
			t.Partitions = ps
			m.Topics = append(m.Topics, t)
		}
	}
	m.Finished = time.Now().UTC().Truncate(time.Second)
	sw.seq++
	ref := repo.WorkerCheckpointRef{Run: m.ID, Worker: sw.w.Name, Sequence: sw.seq}
	if err := sw.r.PutWorkerCheckpoint(ctx, ref, &m); err != nil {
		return 0, fmt.Errorf("backup: worker checkpoint %d: %w", sw.seq, err)
	}
	if sw.last != nil && sw.last.Run == ref.Run {
		covered := true
		for tp := range sw.lastParts {
			covered = covered && owned[tp]
		}
		if covered {
			if err := sw.r.DeleteWorkerCheckpoint(ctx, *sw.last); err != nil {
				e.log.Warn("backup: could not delete an older worker checkpoint", "err", err)
			}
		}
	}
	sw.last, sw.lastParts = &ref, owned
	return sw.seq, nil
}

// await waits, once the worker's partitions are done, until every
// partition of the run is: then it writes the manifest, unless another
// worker did. It returns nil, nil when the assignment was revoked first.
func (sw *sharedWorker) await(ctx context.Context, member *client.GroupMember, plan *repo.Manifest) (*repo.Manifest, error) {
	logged := false
	for {
		if m, err := sw.finished(ctx, plan.ID); m != nil || err != nil {
			return m, err
		}
		m, missing, err := finalize(ctx, sw.r, plan, sw.opts.Version)
		if err != nil {
			if again, ferr := sw.finished(ctx, plan.ID); again != nil || ferr != nil {
				return again, ferr // another worker finished it meanwhile
			}
			return nil, err
		}
		if m != nil {
			sw.opts.Log.Info("backup: every partition of the shared run is done: manifest written", "group", sw.w.Group, "run", m.ID)
			return m, nil
		}
		if !logged {
			sw.opts.Log.Info("backup: this worker's partitions are done; waiting for the others", "group", sw.w.Group, "run", plan.ID, "partitions_left", missing)
			logged = true
		}
		// Until the next try, look for the manifest four times as
		// often: one read, where a try reads every worker checkpoint.
		for range 4 {
			select {
			case <-member.Revoked():
				return nil, nil
			case <-sw.opts.Stop:
				return nil, ErrStopped
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(sw.w.Poll / 4):
			}
			if m, err := sw.finished(ctx, plan.ID); m != nil || err != nil {
				return m, err
			}
		}
	}
}

// finalize writes the manifest of the shared run planned by plan when
// every partition has reached its snapshot end, and deletes the run's
// checkpoints. Otherwise it returns how many partitions have not.
func finalize(ctx context.Context, r *repo.Repository, plan *repo.Manifest, version string) (*repo.Manifest, int, error) {
	best, _, err := r.BestPartitions(ctx, plan)
	if err != nil {
		return nil, 0, fmt.Errorf("backup: shared run %s: %w", plan.ID, err)
	}
	m := cloneManifest(plan)
	missing := 0
	for i := range m.Topics {
		t := &m.Topics[i]
		for j := range t.Partitions {
			p := &t.Partitions[j]
			b := best[t.Name][p.Partition]
			if b.To < snapshotEnd(plan, p) {
				missing++
				continue
			}
			*p = clonePartition(b)
		}
	}
	if missing > 0 {
		return nil, missing, nil
	}
	m.Checkpoint = false
	m.Finished = time.Now().UTC().Truncate(time.Second)
	if version != "" {
		m.KtapeVersion = version
	}
	if err := r.PutManifest(ctx, m); err != nil {
		if errors.Is(err, storage.ErrConflict) {
			// Another worker wrote it first.
			if other, oerr := r.Manifest(ctx, m.ID); oerr == nil {
				return other, 0, nil
			}
		}
		return nil, 0, fmt.Errorf("backup: manifest of shared run %s: %w", m.ID, err)
	}
	// The checkpoints are clutter now; so are the plans of any other run
	// of the group (two leaders that planned at once), which a later run
	// of the same group name would otherwise take up, with their old
	// snapshot ends. Failing that, the manifest stands.
	r.DeleteRun(ctx, m.ID)
	for range 10 {
		other, err := findSharedRun(ctx, r, m.WorkersGroup)
		if err != nil || other == nil || r.DeleteRun(ctx, other.ID) != nil {
			break
		}
	}
	return m, 0, nil
}

// Finalize writes the manifest of group's shared run when every partition
// of it reached its snapshot end (the workers normally do it themselves;
// this is for when they were all stopped after the last one finished). It
// returns ErrIncomplete, with how many partitions are not done, otherwise.
func Finalize(ctx context.Context, r *repo.Repository, group, version string) (*repo.Manifest, error) {
	plan, err := findSharedRun(ctx, r, group)
	if err != nil {
		return nil, err
	}
	if plan == nil {
		return nil, fmt.Errorf("backup: the repository holds no unfinished run of workers group %s", group)
	}
	m, missing, err := finalize(ctx, r, plan, version)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("%w: run %s of workers group %s: %d partitions have not reached their snapshot end; start workers to finish them", ErrIncomplete, plan.ID, group, missing)
	}
	return m, nil
}

// add adds an engine's totals to the worker's.
func (sw *sharedWorker) add(st Stats) {
	sw.st.Batches += st.Batches
	sw.st.Records += st.Records
	sw.st.Bytes += st.Bytes
	sw.st.Segments += st.Segments
	sw.st.StoredBytes += st.StoredBytes
	sw.st.Checkpoints += st.Checkpoints
	sw.st.Gaps += st.Gaps
	sw.st.PeakHeld = max(sw.st.PeakHeld, st.PeakHeld)
	sw.st.Throttled += st.Throttled
}

// cloneManifest copies m deeply enough that its topics and partitions can
// be changed without changing m's.
func cloneManifest(m *repo.Manifest) *repo.Manifest {
	c := *m
	c.Topics = make([]repo.Topic, len(m.Topics))
	for i, t := range m.Topics {
		t.Partitions = make([]repo.Partition, len(m.Topics[i].Partitions))
		for j := range m.Topics[i].Partitions {
			t.Partitions[j] = clonePartition(&m.Topics[i].Partitions[j])
		}
		c.Topics[i] = t
	}
	c.Groups = append([]repo.Group{}, m.Groups...)
	return &c
}

func clonePartition(p *repo.Partition) repo.Partition {
	c := *p
	c.Segments = append([]repo.SegmentRef{}, p.Segments...)
	c.Aborted = append([]repo.Aborted{}, p.Aborted...)
	c.Gaps = append([]repo.Gap{}, p.Gaps...)
	return c
}
