package restore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/repo"
)

// Workers shares one restore between several processes through a Kafka
// group (RunWorkers). Every worker must be given the same backup and
// options: they must work out the same restore id.
type Workers struct {
	// Group is the Kafka group the workers join.
	Group string
	// InstanceID makes the worker a static member (KIP-345).
	InstanceID string
	// SessionTimeout, RebalanceTimeout and HeartbeatInterval are the
	// group's; zero takes client.GroupConfig's defaults.
	SessionTimeout, RebalanceTimeout, HeartbeatInterval time.Duration
	// Poll is how often a worker whose partitions are done tries to
	// finish the restore; default 2 s.
	Poll time.Duration
}

// RunWorkers restores m as one of a group of workers: each restores the
// target partitions the group assigns it (RunPart), partitions of a
// worker that leaves or dies go to the others, which continue them
// exactly where the target holds them, and the worker that finds every
// partition complete records the restore as done and commits the group
// offsets (Finish). Every worker returns once the restore is done; Stats
// count what this one did.
func RunWorkers(ctx context.Context, c *client.Client, r *repo.Repository, m *repo.Manifest, opts Options, w Workers) (Stats, error) {
	if w.Group == "" {
		return Stats{}, errors.New("restore: a workers group needs a name")
	}
	if w.Poll <= 0 {
		w.Poll = 2 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	log := opts.Log
	// Every worker prepares: the first creates the topics and records the
	// start, the others find them (Prepare is safe to run at once).
	prep, err := Prepare(ctx, c, r, m, opts)
	if err != nil {
		return Stats{}, err
	}
	total := Stats{ID: prep.ID, Resumed: prep.Resumed, TopicsCreated: prep.TopicsCreated}
	if prep.Complete {
		// As Run does when run again: commit the group offsets, which the
		// worker that recorded the restore done may have been stopped
		// before committing.
		st, err := Finish(ctx, c, r, m, prep.ID, opts)
		total.Complete = true
		total.GroupsCommitted, total.GroupsNotTranslated = st.GroupsCommitted, st.GroupsNotTranslated
		return total, err
	}
	member, err := c.NewGroupMember(client.GroupConfig{Group: w.Group, InstanceID: w.InstanceID, SessionTimeout: w.SessionTimeout,
		RebalanceTimeout: w.RebalanceTimeout, HeartbeatInterval: w.HeartbeatInterval, Log: log,
		Plan: func(context.Context) ([]client.TopicPartition, []byte, error) {
			return prep.Partitions, []byte(prep.ID), nil
		}})
	if err != nil {
		return total, fmt.Errorf("restore: workers group %s: %w", w.Group, err)
	}
	defer member.Close()
	err = workLoop(ctx, c, r, m, opts, w, prep, member, &total)
	// Done, interrupted or failed, hand the partitions over now rather
	// than after a session timeout: RunPart stopped cleanly.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	if lerr := member.Leave(lctx); lerr != nil {
		log.Warn("restore: could not leave the workers group", "group", w.Group, "err", lerr)
	}
	cancel()
	return total, err
}

// workLoop joins the group and restores each generation's assignment
// until the restore is done.
func workLoop(ctx context.Context, c *client.Client, r *repo.Repository, m *repo.Manifest, opts Options, w Workers, prep *Prepared, member *client.GroupMember, total *Stats) error {
	log := opts.Log
	parts := map[client.TopicPartition]bool{}
	for {
		a, err := member.Join(ctx)
		if err != nil {
			return fmt.Errorf("restore: workers group %s: %w", w.Group, err)
		}
		if id := string(a.Shared); id != prep.ID {
			return fmt.Errorf("restore: workers group %s restores %s, and this worker's options make restore %s: start every worker with the same backup and options", w.Group, id, prep.ID)
		}
		log.Info("restore: assigned partitions by the workers group", "group", w.Group, "restore", prep.ID, "generation", a.Generation,
			"members", a.Members, "leader", a.Leader, "partitions", len(a.Items))
		for _, tp := range a.Items {
			parts[tp] = true
		}
		runCtx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-member.Revoked():
				cancel()
			case <-runCtx.Done():
			}
		}()
		st, err := RunPart(runCtx, c, r, m, prep.ID, a.Items, opts)
		revoked := runCtx.Err() != nil && ctx.Err() == nil
		cancel()
		add(total, st)
		total.Partitions = len(parts)
		switch {
		case revoked:
			continue // RunPart stopped cleanly: rejoin
		case err != nil:
			return err
		}
		// This worker's partitions are done; the last worker to be done
		// finishes the restore.
		if done, err := awaitFinish(ctx, c, r, m, opts, w, prep.ID, member, total); done || err != nil {
			return err
		}
	}
}

// awaitFinish tries to finish the restore every w.Poll until it is done
// (by this worker or another; either way it commits the group offsets),
// or the assignment is revoked (done false: the worker rejoins).
func awaitFinish(ctx context.Context, c *client.Client, r *repo.Repository, m *repo.Manifest, opts Options, w Workers, id string, member *client.GroupMember, total *Stats) (done bool, err error) {
	for {
		// Finish commits the group offsets even when another worker
		// recorded the restore done: that worker may have been stopped
		// before it committed them.
		st, err := Finish(ctx, c, r, m, id, opts)
		if err == nil {
			total.GroupsCommitted, total.GroupsNotTranslated = st.GroupsCommitted, st.GroupsNotTranslated
			if !st.Complete {
				opts.Log.Info("restore: every target partition is restored: restore recorded as done", "group", w.Group, "restore", id)
			}
			return true, nil
		}
		if !errors.Is(err, ErrIncomplete) {
			return false, err
		}
		select {
		case <-member.Revoked():
			return false, nil
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(w.Poll):
		}
	}
}

// add adds a part's totals to the worker's.
func add(t *Stats, s Stats) {
	t.Batches += s.Batches
	t.Records += s.Records
	t.Bytes += s.Bytes
	t.AlreadyRestored += s.AlreadyRestored
	t.AlreadyComplete += s.AlreadyComplete
	t.Markers += s.Markers
	t.Aborted += s.Aborted
	t.Undecided += s.Undecided
	t.Outside += s.Outside
	t.Renumbered += s.Renumbered
	t.Filtered += s.Filtered
	t.Converted += s.Converted
	t.Repartitioned += s.Repartitioned
}
