package repo

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/ktape/ktape/storage"
)

// A run shared by a group of workers (backup --workers-group) keeps its
// plan as checkpoint 1 of the run, marked with the group's name, and each
// worker's progress in worker checkpoints beside it:
//
//	checkpoints/<run-id>/0000000001.json                      the plan
//	checkpoints/<run-id>/workers/<worker>/<sequence>.json    a worker's partitions
//
// A worker checkpoint is a checkpoint manifest that holds only the
// partitions its worker owned when it wrote it. Every one of them is a
// complete account of its partition from the plan's start (its segments,
// gaps and aborted transactions), naming only stored segments, so any of
// them is a correct starting point; the one that reaches furthest is the
// partition's progress (BestPartitions).

// workerNameRe is what a worker's name may hold: it is a key component.
var workerNameRe = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,128}$`)

// ValidWorkerName reports whether name can name a worker in the
// repository.
func ValidWorkerName(name string) bool { return workerNameRe.MatchString(name) }

// WorkerCheckpointRef names one worker checkpoint of a run.
type WorkerCheckpointRef struct {
	Run, Worker string
	Sequence    int
}

func (w WorkerCheckpointRef) key() string {
	return fmt.Sprintf("checkpoints/%s/workers/%s/%010d.json", w.Run, w.Worker, w.Sequence)
}

// PutWorkerCheckpoint stores worker checkpoint ref: m is a checkpoint of
// the shared run ref.Run holding the worker's partitions.
func (r *Repository) PutWorkerCheckpoint(ctx context.Context, ref WorkerCheckpointRef, m *Manifest) error {
	switch {
	case !m.Checkpoint || m.WorkersGroup == "":
		return fmt.Errorf("repo: worker checkpoint %s: not a checkpoint of a shared run", ref.key())
	case m.ID != ref.Run || !ValidWorkerName(ref.Worker) || ref.Sequence < 1:
		return fmt.Errorf("repo: worker checkpoint %s: holds run %s, or names an invalid worker or sequence", ref.key(), m.ID)
	}
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	return r.putMeta(ctx, ref.key(), b)
}

// WorkerCheckpoints lists run's worker checkpoints, by worker then
// sequence.
func (r *Repository) WorkerCheckpoints(ctx context.Context, run string) ([]WorkerCheckpointRef, error) {
	if !backupIDRe.MatchString(run) {
		return nil, fmt.Errorf("repo: %q is not a run id", run)
	}
	prefix := "checkpoints/" + run + "/workers/"
	keys, err := r.st.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	var out []WorkerCheckpointRef
	for _, k := range keys {
		worker, file, ok := strings.Cut(strings.TrimPrefix(k, prefix), "/")
		name, isJSON := strings.CutSuffix(file, ".json")
		seq, err := strconv.Atoi(name)
		if !ok || !isJSON || err != nil || len(name) != 10 || seq < 1 || !ValidWorkerName(worker) {
			return nil, fmt.Errorf("repo: %s: not a worker checkpoint's name (checkpoints/<run>/workers/<worker>/<10 digits>.json)", k)
		}
		out = append(out, WorkerCheckpointRef{Run: run, Worker: worker, Sequence: seq})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Worker != out[j].Worker {
			return out[i].Worker < out[j].Worker
		}
		return out[i].Sequence < out[j].Sequence
	})
	return out, nil
}

// WorkerCheckpoint reads and checks one worker checkpoint.
func (r *Repository) WorkerCheckpoint(ctx context.Context, ref WorkerCheckpointRef) (*Manifest, error) {
	key := ref.key()
	b, err := r.getMeta(ctx, key)
	if err != nil {
		return nil, err
	}
	m, err := ParseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("repo: %s: %w", key, err)
	}
	if m.ID != ref.Run || !m.Checkpoint || m.WorkersGroup == "" {
		return nil, fmt.Errorf("repo: %s holds %s (checkpoint %v, workers group %q), not a worker checkpoint of %s", key, m.ID, m.Checkpoint, m.WorkersGroup, ref.Run)
	}
	return m, nil
}

// DeleteWorkerCheckpoint removes one worker checkpoint; one already gone
// is not an error.
func (r *Repository) DeleteWorkerCheckpoint(ctx context.Context, ref WorkerCheckpointRef) error {
	if err := r.st.Delete(ctx, ref.key()); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("repo: delete %s: %w", ref.key(), err)
	}
	return nil
}

// BestPartitions reads every worker checkpoint of the shared run plan
// and returns, for each partition of the plan, the furthest-reaching
// account of it: the one with the highest To, the newest written among
// equals (a later sequence of the same worker; any of them is correct).
// Partitions no worker checkpoint holds are the plan's own. It also
// returns the checkpoints it read.
func (r *Repository) BestPartitions(ctx context.Context, plan *Manifest) (map[string]map[int32]*Partition, []WorkerCheckpointRef, error) {
	best := map[string]map[int32]*Partition{}
	for i := range plan.Topics {
		t := &plan.Topics[i]
		best[t.Name] = map[int32]*Partition{}
		for j := range t.Partitions {
			best[t.Name][t.Partitions[j].Partition] = &t.Partitions[j]
		}
	}
	refs, err := r.WorkerCheckpoints(ctx, plan.ID)
	if err != nil {
		return nil, nil, err
	}
	var read []WorkerCheckpointRef
	for _, ref := range refs {
		m, err := r.WorkerCheckpoint(ctx, ref)
		if errors.Is(err, storage.ErrNotFound) {
			continue // its worker replaced it since the listing
		}
		if err != nil {
			return nil, nil, err
		}
		read = append(read, ref)
		for i := range m.Topics {
			t := &m.Topics[i]
			pt := plan.Topic(t.Name)
			if pt == nil || pt.ID != t.ID {
				return nil, nil, fmt.Errorf("repo: %s: topic %s (id %s) is not the plan's", ref.key(), t.Name, t.ID)
			}
			for j := range t.Partitions {
				p := &t.Partitions[j]
				cur, ok := best[t.Name][p.Partition]
				if !ok {
					return nil, nil, fmt.Errorf("repo: %s: partition %s/%d is not in the plan", ref.key(), t.Name, p.Partition)
				}
				if pp := pt.Partition(p.Partition); p.From != pp.From || p.To < pp.To {
					return nil, nil, fmt.Errorf("repo: %s: %s/%d holds [%d, %d), the plan starts it at [%d, %d)", ref.key(), t.Name, p.Partition, p.From, p.To, pp.From, pp.To)
				}
				if p.To >= cur.To {
					best[t.Name][p.Partition] = p
				}
			}
		}
	}
	return best, read, nil
}

// DeleteRun removes every checkpoint of run id, its workers' too: once
// its backup's manifest is written they are clutter.
func (r *Repository) DeleteRun(ctx context.Context, id string) error {
	if !backupIDRe.MatchString(id) {
		return fmt.Errorf("repo: %q is not a run id", id)
	}
	keys, err := r.st.List(ctx, "checkpoints/"+id+"/")
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := r.st.Delete(ctx, k); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("repo: delete %s: %w", k, err)
		}
	}
	return nil
}
