package restore

import "github.com/ktape/ktape/client"

// Observer is told how a restore progresses, for progress displays and
// metrics (cmd/ktape draws bars and serves Prometheus metrics from it).
// Its methods are called from the restore's goroutines, the producer's
// among them: they must be safe for concurrent use, and quick.
type Observer interface {
	// Planned is called once per target partition before anything is
	// produced.
	Planned(PartitionPlan)
	// Restored is called as a partition's batches are acknowledged, and
	// as a resumed restore walks past batches the target already holds.
	Restored(Event)
}

// PartitionPlan is a partition's share of a restore: the backed-up source
// offsets [From, To) it walks (a window may leave some of them out).
type PartitionPlan struct {
	Source, Dest client.TopicPartition
	From, To     int64
}

// Event is progress on one partition: the source offsets before Next are
// restored (or left out by the window, or found already in the target),
// and Batches, Records and Bytes more were acknowledged.
type Event struct {
	Source, Dest            client.TopicPartition
	Next                    int64
	Batches, Records, Bytes int64
}

type nopObserver struct{}

func (nopObserver) Planned(PartitionPlan) {}
func (nopObserver) Restored(Event)        {}
