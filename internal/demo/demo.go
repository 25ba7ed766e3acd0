// Package demo is ktape's main job run end to end with nothing installed:
// it starts an embedded Kafka cluster in this process (franz-go's kfake,
// on loopback ports), writes sample topics into it (every codec, keys,
// headers, null and large values, committed and aborted transactions,
// deleted records, empty partitions, topic configs, consumer-group
// offsets), backs them up into a repository with the real engine
// (backup.Run), verifies the repository deeply, and checks every backed-up
// record against the cluster. Restoring into a second embedded cluster is
// to be its next step; until it is wired in, that step says so.
//
// Every check is performed, never assumed: the records are compared by
// franz-go, an implementation independent of ktape's (internal/
// crosscheck), and the first difference fails the run, naming topic,
// partition and offset.
//
// This package, with internal/crosscheck which it uses, is the only part
// of the shipped binary that uses franz-go (kgo to produce the sample and
// read it back, kfake as the cluster; about 11 MB of the binary): it is
// there because the demo needs an embedded cluster and an independent
// reader, not because ktape's own work uses it. It never prints: steps are
// reported through Options.Progress and the returned Summary, which
// cmd/ktape renders.
package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/ktape/ktape/backup"
	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultRecords is the sample's size when Options.Records is zero: a few
// seconds' work, tens of megabytes.
const DefaultRecords = 20000

// DefaultBrokers is the embedded cluster's size when Options.Brokers is
// zero.
const DefaultBrokers = 3

// clusterIDPrefix starts the id of every demo cluster. A repository given
// to the demo may hold backups only of clusters so named, so that the
// demo never writes its sample into a real repository by mistake.
const clusterIDPrefix = "ktape-demo-"

// Steps, in the order they run and are reported.
const (
	StepCluster = "cluster"
	StepProduce = "produce"
	StepBackup  = "backup"
	StepVerify  = "verify"
	StepCheck   = "check"
	StepRestore = "restore"
)

// Options configure Run; the zero value is the default demo in a
// temporary repository.
type Options struct {
	// Repo is the repository to back up into: a directory or a storage
	// URL, kept afterwards. It must be empty or hold only earlier demos'
	// backups. Empty: a temporary directory, removed afterwards unless
	// verify or the check failed, when it is kept for inspection.
	Repo string
	// Records is about how many records the sample has; default
	// DefaultRecords.
	Records int
	// Brokers is the embedded cluster's size; default DefaultBrokers.
	Brokers int
	// Version is recorded in the backup's manifest.
	Version string
	// Log receives the backup engine's messages; default none.
	Log *slog.Logger
	// Progress, if set, is called after each step with its name (StepX)
	// and the summary filled in so far, on Run's goroutine.
	Progress func(step string, s *Summary)
}

// Summary is what the demo did, step by step. Fields of steps not reached
// are zero.
type Summary struct {
	Repository string         `json:"repository"`
	Kept       bool           `json:"kept"` // the repository is kept after the demo
	Cluster    ClusterSummary `json:"cluster"`
	Produced   ProduceSummary `json:"produced"`
	Backup     BackupSummary  `json:"backup"`
	Verify     VerifySummary  `json:"verify"`
	Check      CheckSummary   `json:"check"`
	Restore    RestoreSummary `json:"restore"`
}

// ClusterSummary is the embedded cluster.
type ClusterSummary struct {
	ID      string   `json:"id"`
	Brokers []string `json:"brokers"`
}

// ProduceSummary is the sample written to the cluster.
type ProduceSummary struct {
	Topics     int      `json:"topics"`
	Partitions int      `json:"partitions"`
	Records    int64    `json:"records"` // acknowledged data records, aborted ones included
	Bytes      int64    `json:"bytes"`   // their keys, values and headers
	Codecs     []string `json:"codecs"`
	// Committed and Aborted count transactions; Markers the control
	// records they ended with.
	Committed int   `json:"committed_transactions"`
	Aborted   int   `json:"aborted_transactions"`
	Markers   int64 `json:"markers"`
	// Deleted records, by DeleteRecords, before the backup.
	Deleted         int64   `json:"deleted"`
	EmptyPartitions int     `json:"empty_partitions"`
	Groups          int     `json:"groups"`
	GroupOffsets    int     `json:"group_offsets"`
	Seconds         float64 `json:"seconds"`
}

// BackupSummary is the backup made.
type BackupSummary struct {
	ID          string  `json:"id"`
	Partitions  int     `json:"partitions"`
	Batches     int64   `json:"batches"`
	Records     int64   `json:"records"` // in the batches stored: markers, and records below a log start that share a batch with kept ones, included
	DataBytes   int64   `json:"data_bytes"`
	StoredBytes int64   `json:"stored_bytes"`
	Segments    int     `json:"segments"`
	Groups      int     `json:"groups"`
	Seconds     float64 `json:"seconds"`
	MBPerSecond float64 `json:"mb_per_second"` // data bytes, 10^6 a second
}

// VerifySummary is repo.Verify's deep pass over the backup.
type VerifySummary struct {
	Deep     bool `json:"deep"`
	Segments int  `json:"segments"`
	Problems int  `json:"problems"`
}

// CheckSummary counts what was compared with the cluster.
type CheckSummary struct {
	Partitions   int   `json:"partitions"`    // ranges equal to the cluster's, records compared
	Records      int64 `json:"records"`       // data records equal in both
	Markers      int64 `json:"markers"`       // control records equal in both
	GroupOffsets int   `json:"group_offsets"` // committed offsets found in the manifest
	TopicConfigs int   `json:"topic_configs"` // topic configs found in the manifest
}

// RestoreSummary is the restore step: the backup restored into a second
// embedded cluster, with its consumer groups, and checked.
type RestoreSummary struct {
	Available   bool    `json:"available"`
	ID          string  `json:"id"`
	Partitions  int     `json:"partitions"`
	Batches     int64   `json:"batches"`
	Records     int64   `json:"records"`
	Bytes       int64   `json:"bytes"`
	Skipped     int64   `json:"skipped_batches"` // markers, aborted and undecided transactions
	Seconds     float64 `json:"seconds"`
	MBPerSecond float64 `json:"mb_per_second"`
	// RecordsCompared are the target's records found equal to the
	// source's; GroupOffsets the translated offsets checked.
	RecordsCompared int64 `json:"records_compared"`
	GroupOffsets    int   `json:"group_offsets"`
}

// Run runs the demo. It returns the summary so far and an error when a
// step fails or a check finds a difference; the error names the step
// and, for a difference, the topic, partition and offset.
func Run(ctx context.Context, opts Options) (*Summary, error) {
	if opts.Records <= 0 {
		opts.Records = DefaultRecords
	}
	if opts.Brokers <= 0 {
		opts.Brokers = DefaultBrokers
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	progress := func(step string, s *Summary) {
		if opts.Progress != nil {
			opts.Progress(step, s)
		}
	}
	s := &Summary{Repository: opts.Repo, Kept: opts.Repo != ""}
	if opts.Repo == "" {
		dir, err := os.MkdirTemp("", "ktape-demo-")
		if err != nil {
			return s, fmt.Errorf("demo: repository: %w", err)
		}
		s.Repository = dir
	}
	inspect, err := run(ctx, opts, s, progress)
	if inspect && !s.Kept {
		s.Kept = true
		err = fmt.Errorf("%w (the repository is kept for inspection: %s)", err, s.Repository)
	}
	if !s.Kept {
		if rerr := os.RemoveAll(s.Repository); rerr != nil {
			return s, fmt.Errorf("demo: remove the temporary repository: %w", rerr)
		}
	}
	return s, err
}

// run runs the steps into s.Repository. inspect reports a failure of
// verify or the check, which leaves a repository worth looking at.
func run(ctx context.Context, opts Options, s *Summary, progress func(string, *Summary)) (inspect bool, err error) {
	st, err := storage.Open(ctx, s.Repository)
	if err != nil {
		return false, fmt.Errorf("demo: repository: %w", err)
	}
	defer st.Close()
	s.Repository = st.URL()
	r, err := repo.Open(ctx, st, true)
	if err != nil {
		return false, fmt.Errorf("demo: repository: %w", err)
	}
	if err := onlyDemos(ctx, r); err != nil {
		return false, fmt.Errorf("demo: %w", err)
	}

	env, err := start(ctx, opts.Brokers)
	if err != nil {
		return false, fmt.Errorf("demo: %s: %w", StepCluster, err)
	}
	defer env.close()
	s.Cluster = ClusterSummary{ID: env.id, Brokers: env.seeds}
	progress(StepCluster, s)

	began := time.Now()
	smp, err := populate(ctx, env.c, env.seeds, opts.Records)
	if err != nil {
		return false, fmt.Errorf("demo: %s: %w", StepProduce, err)
	}
	s.Produced = ProduceSummary{Topics: len(smp.topics), Records: smp.records, Bytes: smp.bytes,
		Committed: smp.committed, Aborted: smp.aborted, Markers: smp.markers, Deleted: smp.deleted, EmptyPartitions: smp.empty,
		Groups: len(smp.groups), GroupOffsets: smp.groupCount, Seconds: time.Since(began).Seconds()}
	for _, n := range smp.topics {
		s.Produced.Partitions += int(n)
	}
	for _, t := range codecTopics {
		s.Produced.Codecs = append(s.Produced.Codecs, strings.TrimPrefix(t.name, "codec."))
	}
	progress(StepProduce, s)

	// The backup, as ktape backup makes it: a full snapshot, a new run
	// even if an earlier demo left one unfinished.
	began = time.Now()
	m, stats, err := backup.Run(ctx, env.c, r, backup.Options{Full: true, Fresh: true, Version: opts.Version, Bootstrap: env.seeds, Log: opts.Log})
	if err != nil {
		return false, fmt.Errorf("demo: %s: %w", StepBackup, err)
	}
	secs := time.Since(began).Seconds()
	s.Backup = BackupSummary{ID: m.ID, Partitions: stats.Partitions, Batches: stats.Batches, Records: stats.Records,
		DataBytes: stats.Bytes, StoredBytes: stats.StoredBytes, Segments: stats.Segments, Groups: stats.Groups,
		Seconds: secs, MBPerSecond: float64(stats.Bytes) / 1e6 / secs}
	progress(StepBackup, s)

	if s.Verify, err = verify(ctx, r, m); err != nil {
		return true, fmt.Errorf("demo: %s: %w", StepVerify, err)
	}
	progress(StepVerify, s)

	if s.Check, err = check(ctx, env.kgo, st, m, smp); err != nil {
		return true, fmt.Errorf("demo: %s: %w", StepCheck, err)
	}
	progress(StepCheck, s)

	if s.Restore, err = restoreAndCheck(ctx, r, m, env, smp, opts.Brokers, opts); err != nil {
		return true, fmt.Errorf("demo: %s: %w", StepRestore, err)
	}
	progress(StepRestore, s)
	return false, nil
}

// ErrForeignRepository is returned, wrapped, for a repository that holds
// backups of clusters other than demo clusters.
var ErrForeignRepository = errors.New("the repository holds backups of a cluster that is not a demo's")

// onlyDemos refuses a repository holding backups or unfinished runs of
// clusters other than demo clusters: the demo's sample does not belong
// beside real backups.
func onlyDemos(ctx context.Context, r *repo.Repository) error {
	ids, err := r.Backups(ctx)
	if err != nil {
		return err
	}
	var ms []*repo.Manifest
	for _, id := range ids {
		m, err := r.Manifest(ctx, id)
		if err != nil {
			return err
		}
		ms = append(ms, m)
	}
	runs, err := r.Unfinished(ctx)
	if err != nil {
		return err
	}
	for _, run := range runs {
		m, err := r.Checkpoint(ctx, run.ID, run.Checkpoints[len(run.Checkpoints)-1])
		if err != nil {
			return err
		}
		ms = append(ms, m)
	}
	for _, m := range ms {
		if !strings.HasPrefix(m.Source.ClusterID, clusterIDPrefix) {
			return fmt.Errorf("%w: backup %s of cluster %q; give the demo an empty directory, or none", ErrForeignRepository, m.ID, m.Source.ClusterID)
		}
	}
	return nil
}

// env is the embedded cluster and the clients the demo uses on it:
// ktape's for the backup and admin calls, kgo's for the check.
type env struct {
	kf    *kfake.Cluster
	id    string
	seeds []string
	c     *client.Client
	kgo   *kgo.Client
}

// start starts a kfake cluster of n brokers on random loopback ports,
// with a fresh demo cluster id, so that backups of earlier demos in the
// same repository are never taken for this cluster's.
func start(ctx context.Context, n int) (*env, error) {
	var b [4]byte
	rand.Read(b[:])
	e := &env{id: clusterIDPrefix + hex.EncodeToString(b[:])}
	kf, err := kfake.NewCluster(kfake.NumBrokers(n), kfake.ClusterID(e.id))
	if err != nil {
		return nil, fmt.Errorf("start kfake: %w", err)
	}
	e.kf, e.seeds = kf, kf.ListenAddrs()
	if e.c, err = client.New(ctx, e.seeds, nil); err != nil {
		e.close()
		return nil, fmt.Errorf("connect to %s: %w", strings.Join(e.seeds, ","), err)
	}
	if e.kgo, err = kgo.NewClient(kgo.SeedBrokers(e.seeds...)); err != nil {
		e.close()
		return nil, fmt.Errorf("kgo client: %w", err)
	}
	return e, nil
}

func (e *env) close() {
	if e.kgo != nil {
		e.kgo.Close()
	}
	if e.c != nil {
		e.c.Close()
	}
	e.kf.Close()
}

// verify runs repo.Verify deep over the backup: every segment's SHA-256,
// index, batches' CRCs, and every offset in a batch or a gap.
func verify(ctx context.Context, r *repo.Repository, m *repo.Manifest) (VerifySummary, error) {
	v := VerifySummary{Deep: true}
	for _, t := range m.Topics {
		for _, p := range t.Partitions {
			v.Segments += len(p.Segments)
		}
	}
	errs := r.Verify(ctx, m, true)
	v.Problems = len(errs)
	if len(errs) > 0 {
		if len(errs) == 1 {
			return v, errs[0]
		}
		return v, fmt.Errorf("%d problems, the first: %w", len(errs), errs[0])
	}
	return v, nil
}
