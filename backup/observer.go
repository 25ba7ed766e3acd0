package backup

import (
	"time"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/repo"
)

// An Observer is told what a backup does, for progress displays and
// metrics. Its methods are called from the engine's goroutines (Stored
// from upload goroutines, concurrently with the others): they must be
// safe for concurrent use and return quickly.
type Observer interface {
	// Planned is called once per partition before anything is fetched.
	Planned(PartitionPlan)
	// Fetched is called for each partition's share of a fetch response.
	Fetched(FetchEvent)
	// Stored is called when a segment and its index are stored.
	Stored(StoreEvent)
	// Checkpointed is called when a checkpoint, or the final manifest, is
	// written.
	Checkpointed(CheckpointEvent)
}

// PartitionPlan is a partition's range in the backup as planned.
type PartitionPlan struct {
	client.TopicPartition
	// From is where this run starts; Done is how far earlier runs (a
	// resumed run's checkpoint, or the backup this one continues) got.
	From, Done int64
	// To is where a snapshot stops; -1 in continuous mode.
	To int64
	// HighWatermark is the partition's when it was planned.
	HighWatermark int64
}

// FetchEvent is one partition's share of a fetch response.
type FetchEvent struct {
	client.TopicPartition
	Batches, Records, Bytes int64 // added to the backup
	// Next is the partition's position after them: everything below it
	// is in a segment or a gap.
	Next          int64
	HighWatermark int64
	// Wait is how long the engine waited for the response that held it
	// (zero when one was ready): the fetch latency it saw.
	Wait time.Duration
}

// StoreEvent is a segment stored.
type StoreEvent struct {
	client.TopicPartition
	Segment repo.SegmentRef
	Took    time.Duration
}

// CheckpointEvent is a checkpoint or final manifest written.
type CheckpointEvent struct {
	Sequence int // 0 for the final manifest
	Final    bool
	Took     time.Duration // sealing open segments, waiting for uploads, writing
}

type nopObserver struct{}

func (nopObserver) Planned(PartitionPlan)        {}
func (nopObserver) Fetched(FetchEvent)           {}
func (nopObserver) Stored(StoreEvent)            {}
func (nopObserver) Checkpointed(CheckpointEvent) {}
