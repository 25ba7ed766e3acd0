package main

// Seeded crash trials (the CRASH class of the reliability suite): backups
// (snapshot and continuous) and restores run as real processes and are
// stopped at random moments, mostly by SIGKILL, sometimes by SIGTERM, then
// resumed to completion. Each trial's result is judged against what an
// uninterrupted run gives: backups by reading the repository back with
// franz-go and comparing it with the broker offset by offset, restores by
// reading the target back with franz-go (read_committed) and comparing it
// with an uninterrupted restore's target, group offsets and offset maps
// included.
//
// Settings come from the environment, so that CI runs a bounded number
// of trials and a make target (make reliability-crash) runs many:
//
//	KTAPE_CRASH_TRIALS   trials per kind (default 20)
//	KTAPE_CRASH_SEED     base seed (default 1; "random" picks one and logs it)
//	KTAPE_CRASH_TRIAL    run only this trial (a failure names its number)
//	KTAPE_CRASH_SUMMARY  append one JSON line per kind with the figures
//	KTAPE_CRASH_STORE    where the repositories are: local, s3 or all
//	                     (default: local, and 2 trials per kind on S3)
//
// On S3 (versitygw, one prefix per trial) the snapshot, continuous and
// restore kinds run as locally, and a fourth kind, s3-multipart, backs up
// partitions whose segments are large enough to go up as multipart
// uploads, with half its stops timed to land while one is in progress.
// After each trial the repository is listed: segments no backup names and
// multipart uploads left unfinished are counted, not failed on (no prune
// exists yet to reclaim them).
//
// A seed fixes the kill plan (how many stops, when, which signal), not the
// scheduling of the processes: a failing seed is a strong lead, not an
// exact replay.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ktape/ktape/internal/crosscheck"
	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// crashSettings are the trial counts and seed, from the environment.
type crashSettings struct {
	trials int
	only   int // run only this trial; -1 runs them all
	seed   uint64
}

func crashConfig(t *testing.T) crashSettings {
	s := crashSettings{trials: 20, only: -1, seed: 1}
	if v := os.Getenv("KTAPE_CRASH_TRIALS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("KTAPE_CRASH_TRIALS=%q: want a positive number", v)
		}
		s.trials = n
	}
	switch v := os.Getenv("KTAPE_CRASH_SEED"); v {
	case "":
	case "random":
		s.seed = uint64(time.Now().UnixNano())
	default:
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("KTAPE_CRASH_SEED=%q: want a number or random", v)
		}
		s.seed = n
	}
	if v := os.Getenv("KTAPE_CRASH_TRIAL"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			t.Fatalf("KTAPE_CRASH_TRIAL=%q: want a trial number", v)
		}
		s.only = n
	}
	return s
}

// rng returns trial i's random source: the same seed and trial always
// give the same plan.
func (s crashSettings) rng(kind string, i int) *rand.Rand {
	h := sha256.Sum256([]byte(kind))
	k := uint64(h[0]) | uint64(h[1])<<8 | uint64(h[2])<<16 | uint64(h[3])<<24
	return rand.New(rand.NewPCG(s.seed, k<<32|uint64(i)))
}

// crashTally is one kind's figures.
type crashTally struct {
	Kind   string `json:"kind"`
	Seed   uint64 `json:"seed"`
	Trials int    `json:"trials"`
	// Kills and Terms count the SIGKILLs and SIGTERMs that found the run
	// still going; Late the planned stops that found it already done.
	Kills int `json:"kills"`
	Terms int `json:"graceful_stops"`
	Late  int `json:"stops_after_completion"`
	// Midway are the stops that left the work part done: a backup whose
	// newest checkpoint holds some records (and, for a snapshot, not all),
	// a restore whose target holds some of its records and not all.
	Midway int `json:"stops_midway"`
	// Resumes are runs started after a stop.
	Resumes int `json:"resumes"`
	// Records are the records (and transaction markers, for backups)
	// compared after the trials' last runs.
	Records    int64 `json:"records_compared"`
	Missing    int64 `json:"missing"`
	Duplicated int64 `json:"duplicated"`
	// Misplaced are records present once but at another offset or
	// partition than an uninterrupted run puts them, or with other
	// contents; a backup's records beyond what the broker holds.
	Misplaced int64 `json:"misplaced"`
	// Dangling are objects a manifest, checkpoint or restore log names
	// that do not exist, checked after every stop and at the end.
	Dangling int `json:"dangling_references"`
	// Orphans are segment and index objects no backup or checkpoint
	// names, left by runs killed between storing a segment and
	// committing a checkpoint: not part of any backup, nothing reads them.
	Orphans int `json:"orphan_objects"`
	// Store is where the repositories were: local or s3.
	Store string `json:"store"`
	// Objects are the objects in the repositories after the trials' last
	// runs; FinalOrphans those of them no backup or checkpoint names
	// (segments and indexes a prune would reclaim), and OpenUploads the
	// multipart uploads left begun and never completed nor aborted (S3
	// keeps their parts until aborted, or a lifecycle rule does it).
	Objects      int `json:"objects_at_end"`
	FinalOrphans int `json:"orphan_objects_at_end"`
	OpenUploads  int `json:"unfinished_multipart_uploads_at_end"`
	// UploadStops are the stops timed to a multipart upload in progress
	// that found one (the rest found the run done or past its uploads).
	UploadStops int `json:"stops_during_multipart_upload"`
	// TermUploads are multipart uploads left unfinished by runs stopped
	// gracefully (SIGTERM): each a failure.
	TermUploads   int     `json:"unfinished_uploads_after_graceful_stop"`
	Uninterrupted float64 `json:"uninterrupted_seconds"`
	Seconds       float64 `json:"seconds"`
}

func (c *crashTally) String() string {
	return fmt.Sprintf("crash %s (%s): seed %d, %d trials, %d kills, %d graceful stops (%d stops found the run done, %d left it part done, %d landed during a multipart upload), %d resumes, %d records compared: %d missing, %d duplicated, %d misplaced, %d dangling references (%d orphan objects seen after stops); at the end %d objects, %d of them orphans, %d unfinished multipart uploads; uninterrupted run %.2fs, wall %.1fs",
		c.Kind, c.Store, c.Seed, c.Trials, c.Kills, c.Terms, c.Late, c.Midway, c.UploadStops, c.Resumes, c.Records, c.Missing, c.Duplicated, c.Misplaced, c.Dangling, c.Orphans, c.Objects, c.FinalOrphans, c.OpenUploads, c.Uninterrupted, c.Seconds)
}

// report logs the tally and appends it to $KTAPE_CRASH_SUMMARY.
func (c *crashTally) report(t *testing.T, start time.Time) {
	c.Seconds = time.Since(start).Seconds()
	t.Log(c.String())
	if c.Missing+c.Duplicated+c.Misplaced > 0 || c.Dangling > 0 || c.TermUploads > 0 {
		t.Errorf("crash %s: records lost, duplicated or misplaced, references dangling, or multipart uploads left by graceful stops (seed %d)", c.Kind, c.Seed)
	}
	f := os.Getenv("KTAPE_CRASH_SUMMARY")
	if f == "" {
		return
	}
	b, _ := json.Marshal(c)
	out, err := os.OpenFile(f, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err == nil {
		_, err = out.Write(append(b, '\n'))
		err = errors.Join(err, out.Close())
	}
	if err != nil {
		t.Errorf("KTAPE_CRASH_SUMMARY: %v", err)
	}
}

// stop is one planned interruption of a run: after delay, sig. An
// upload stop waits for a multipart upload to be in progress first, then
// delay.
type stop struct {
	delay  time.Duration
	sig    syscall.Signal
	upload bool
}

func (s stop) String() string {
	name := "KILL"
	if s.sig == syscall.SIGTERM {
		name = "TERM"
	}
	if s.upload {
		return fmt.Sprintf("%s@upload+%v", name, s.delay.Round(time.Millisecond))
	}
	return fmt.Sprintf("%s@%v", name, s.delay.Round(time.Millisecond))
}

// uploadWindow bounds the delay of an upload stop after the upload is
// seen: a multipart upload of a few parts to a local versitygw takes tens
// of milliseconds.
const uploadWindow = 40 * time.Millisecond

// uploadStops turns about half of stops into upload stops.
func uploadStops(r *rand.Rand, stops []stop) {
	for i := range stops {
		if r.IntN(2) == 0 {
			stops[i].upload = true
			stops[i].delay = time.Duration(r.Int64N(int64(uploadWindow)))
		}
	}
}

// wait waits for the moment of stop s of the running p and reports
// whether p exited first. uploads counts the multipart uploads begun and
// not finished (nil: the store has none); before is its count when p
// started.
func (s stop) wait(p *proc, uploads func() int, before int, tally *crashTally) bool {
	if !s.upload || uploads == nil {
		return p.waitFor(s.delay)
	}
	for uploads() <= before {
		if p.waitFor(time.Millisecond) {
			return true
		}
	}
	tally.UploadStops++
	return p.waitFor(s.delay)
}

// earlyWindow is how soon after start an early stop lands: the process
// starting, opening (or initialising) the repository, planning, writing
// the first checkpoint or restore log.
const earlyWindow = 40 * time.Millisecond

// planStops draws 1 to 3 stops of runs that take about d uninterrupted:
// each lands uniformly within d, or, one time in five, within the first
// earlyWindow; one in eight is a SIGTERM (a graceful stop), the rest are
// SIGKILLs.
func planStops(r *rand.Rand, d time.Duration) []stop {
	stops := make([]stop, 1+r.IntN(3))
	for i := range stops {
		window := d
		if r.IntN(5) == 0 {
			window = min(d, earlyWindow)
		}
		stops[i] = stop{delay: time.Duration(r.Int64N(int64(window))), sig: syscall.SIGKILL}
		if r.IntN(8) == 0 {
			stops[i].sig = syscall.SIGTERM
		}
	}
	return stops
}

// runStopped runs ktape args once per planned stop, stopping each run as
// planned (uploads as stop.wait takes it), then once more to
// completion, and returns that last run. A run
// that completes before its stop ends the trial early. gracefulOK says
// which exit codes a run stopped by SIGTERM may have (0 means it
// completed). After every stop, check judges what the run left and
// reports whether the work is complete (a backup killed after it wrote
// its manifest): then runStopped returns nil, since running again would
// be new work (an incremental backup), not a resume.
func runStopped(t *testing.T, bin string, args []string, stops []stop, uploads func() int, tally *crashTally, gracefulOK func(code int) bool, check func() bool) *proc {
	t.Helper()
	for i, s := range stops {
		if i > 0 {
			tally.Resumes++
		}
		before := 0
		if uploads != nil {
			before = uploads()
		}
		p := startProc(t, bin, args...)
		if !s.wait(p, uploads, before, tally) {
			if !p.signal(s.sig) {
				tally.Late++
			} else if s.sig == syscall.SIGKILL {
				tally.Kills++
			} else {
				tally.Terms++
			}
		} else {
			tally.Late++
		}
		switch {
		case p.crashed():
			t.Fatalf("run %d (stop %v) crashed:\n%v", i, s, p)
		case p.err == nil:
			return p // completed, stop or no stop
		case p.code() == -1: // ended by the signal, before it could handle it
		case s.sig == syscall.SIGTERM && gracefulOK(p.code()):
			// A graceful stop ends its uploads: completes or aborts them.
			if uploads != nil {
				if n := uploads() - before; n > 0 {
					tally.TermUploads += n
					t.Errorf("run %d (stop %v), stopped gracefully, left %d multipart uploads unfinished", i, s, n)
				}
			}
		default:
			t.Fatalf("run %d (stop %v) failed:\n%v", i, s, p)
		}
		if check() {
			return nil
		}
	}
	tally.Resumes++
	p := startProc(t, bin, args...)
	if !p.waitFor(time.Minute) {
		p.signal(syscall.SIGKILL)
		t.Fatalf("the resumed run did not finish within a minute:\n%v", p)
	}
	if p.err != nil || p.crashed() {
		t.Fatalf("the resumed run failed:\n%v", p)
	}
	return p
}

// crashSource is the shared source cluster of the snapshot and restore
// trials: two topics with plain, lz4-compressed, committed and aborted
// transactional batches, and two consumer groups with committed offsets.
type crashSource struct {
	c *kfaketest.Cluster
	// live holds every record (markers included) of every partition, as
	// franz-go reads it from the broker.
	live   map[string][][]*kgo.Record
	groups map[string]map[string]map[int32]int64 // group → topic → partition → offset
	topics map[string]int                        // topic → partitions
}

var crashTopics = map[string]int{"orders": 3, "events": 1}

func startCrashSource(t *testing.T) *crashSource {
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(3, "orders"), kfaketest.Topics(1, "events"))
	// Values that do not compress, so that the lz4 batches weigh as much
	// as the plain ones: 3 MiB a partition, more than a fetch takes of it
	// (1 MiB), so a backup stopped mid-way has partitions half done.
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 48 {
		var rs []*kgo.Record
		for j := range 8 {
			value := make([]byte, 24<<10)
			for k := range value {
				value[k] = byte(rng.Uint32())
			}
			rs = append(rs, &kgo.Record{Key: fmt.Appendf(nil, "o%d-%d", i, j), Value: value,
				Headers: []kgo.RecordHeader{{Key: "round", Value: fmt.Append(nil, i)}}})
		}
		var o kfaketest.ProduceOptions
		if i%2 == 1 {
			o.Compression = kgo.Lz4Compression()
		}
		switch i % 8 {
		case 3:
			o.Txn = kfaketest.Commit
		case 7:
			o.Txn = kfaketest.Abort
		}
		c.ProduceWith(t, o, "orders", int32(i%3), rs...)
		if i%2 == 0 {
			c.Produce(t, "events", 0, &kgo.Record{Key: fmt.Appendf(nil, "e%d", i), Value: fmt.Appendf(nil, "event %d", i)},
				&kgo.Record{Key: fmt.Appendf(nil, "e%d+", i), Value: nil}) // a tombstone too
		}
	}
	s := &crashSource{c: c, live: brokerRecords(t, c, crashTopics), topics: crashTopics}
	slowFetches(c, 40*time.Millisecond)
	// Committed offsets: at a data record, at the end, inside an aborted
	// transaction (a restore translates it to the next record it keeps).
	s.groups = map[string]map[string]map[int32]int64{
		"g1": {"orders": {0: 20, 1: int64(len(s.live["orders"][1]))}},
		"g2": {"orders": {2: aborted(t, s.live["orders"][2])}, "events": {0: 7}},
	}
	commitOffsets(t, c.Client(t, namedTopics), s.groups)
	return s
}

// slowFetches delays every fetch the cluster answers by d, as a broker
// across a network would be: a backup of a few MiB then takes long
// enough for stops to land while it is fetching and storing segments, not
// only while it starts and finishes. The sleep holds only the connection
// it delays.
func slowFetches(c *kfaketest.Cluster, d time.Duration) {
	kf := c.Kfake()
	kf.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		kf.KeepControl()
		kf.SleepControl(func() { time.Sleep(d) })
		return nil, nil, false
	})
}

// aborted returns the offset of the first record of an aborted
// transaction among rs (read_uncommitted, markers included).
func aborted(t *testing.T, rs []*kgo.Record) int64 {
	for _, r := range rs {
		if r.Attrs.IsControl() || !r.Attrs.IsTransactional() {
			continue
		}
		if round, err := strconv.Atoi(string(r.Headers[0].Value)); err == nil && round%8 == 7 {
			return r.Offset
		}
	}
	t.Fatal("no aborted transaction in the partition")
	return 0
}

// brokerRecords reads every partition of topics from the broker with
// franz-go, read_uncommitted, markers included.
func brokerRecords(t *testing.T, c *kfaketest.Cluster, topics map[string]int) map[string][][]*kgo.Record {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cc := crosscheck.NewCluster(c.Client(t))
	out := map[string][][]*kgo.Record{}
	for topic := range topics {
		ct, err := cc.Topic(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		offs, err := cc.Offsets(ctx, ct, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ct.Partitions() {
			rs, err := cc.Records(ctx, ct, p, offs[p].LogStart, offs[p].End, crosscheck.ReadOptions{Control: true})
			if err != nil {
				t.Fatal(err)
			}
			if offs[p].LogStart != 0 || len(rs) != int(offs[p].End) {
				t.Fatalf("%s/%d: %d records in [%d, %d): want a whole log", topic, p, len(rs), offs[p].LogStart, offs[p].End)
			}
			out[topic] = append(out[topic], rs)
		}
	}
	return out
}

// namedTopics keeps the group requests at versions that name topics
// (OffsetCommit and OffsetFetch from Kafka 4 name them by id).
var namedTopics = kgo.MaxVersions(kversion.V3_8_0())

// commitOffsets commits group offsets with franz-go, as a group with no
// members would (generation -1).
func commitOffsets(t *testing.T, cl *kgo.Client, groups map[string]map[string]map[int32]int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for g, topics := range groups {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.Generation = g, -1
		for topic, parts := range topics {
			rt := kmsg.NewOffsetCommitRequestTopic()
			rt.Topic = topic
			for p, off := range parts {
				rp := kmsg.NewOffsetCommitRequestTopicPartition()
				rp.Partition, rp.Offset = p, off
				rt.Partitions = append(rt.Partitions, rp)
			}
			req.Topics = append(req.Topics, rt)
		}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("commit %s: %v", g, err)
		}
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
					t.Fatalf("commit %s %s/%d: %v", g, rt.Topic, rp.Partition, err)
				}
			}
		}
	}
}

// fetchOffsets reads the committed offsets of the named groups with
// franz-go.
func fetchOffsets(t *testing.T, cl *kgo.Client, groups ...string) map[string]map[string]map[int32]int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := map[string]map[string]map[int32]int64{}
	for _, g := range groups {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Group = g
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("offset fetch %s: %v", g, err)
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			t.Fatalf("offset fetch %s: %v", g, err)
		}
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
					t.Fatalf("offset fetch %s %s/%d: %v", g, rt.Topic, rp.Partition, err)
				}
				if rp.Offset < 0 {
					continue
				}
				if out[g] == nil {
					out[g] = map[string]map[int32]int64{}
				}
				if out[g][rt.Topic] == nil {
					out[g][rt.Topic] = map[int32]int64{}
				}
				out[g][rt.Topic][rp.Partition] = rp.Offset
			}
		}
	}
	return out
}

// TestCrashTrials is the CRASH class of the reliability suite: seeded
// trials of snapshot backups, continuous backups and restores stopped at
// random moments and resumed, each compared with an uninterrupted run.
func TestCrashTrials(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ktape and runs it hundreds of times")
	}
	cfg := crashConfig(t)
	t.Logf("crash trials: %d per kind, seed %d (KTAPE_CRASH_SEED=%d reproduces the plans)", cfg.trials, cfg.seed, cfg.seed)
	bin := buildKtape(t)
	src := startCrashSource(t)
	sel := crashStoreSelection(t)
	if sel != "s3" {
		local := localStore()
		t.Run("snapshot", func(t *testing.T) { crashSnapshot(t, cfg, bin, src, local, snapshotKind) })
		t.Run("continuous", func(t *testing.T) { crashContinuous(t, cfg, bin, local) })
		t.Run("restore", func(t *testing.T) { crashRestore(t, cfg, bin, src, local) })
	}
	if sel == "local" {
		return
	}
	s3 := s3Store(t)
	if s3 == nil {
		t.Log("no versitygw: the S3 crash trials did not run")
		return
	}
	if sel == "" {
		// CI: two trials per kind; make reliability-crash-s3 runs many.
		cfg.trials = min(cfg.trials, 2)
	}
	large := startLargeSource(t)
	t.Run("s3", func(t *testing.T) {
		t.Run("snapshot", func(t *testing.T) { crashSnapshot(t, cfg, bin, src, s3, snapshotKind) })
		t.Run("multipart", func(t *testing.T) { crashSnapshot(t, cfg, bin, large, s3, multipartKind) })
		t.Run("continuous", func(t *testing.T) { crashContinuous(t, cfg, bin, s3) })
		t.Run("restore", func(t *testing.T) { crashRestore(t, cfg, bin, src, s3) })
	})
}

// snapshotOptions are what tells the snapshot kinds apart.
type snapshotOptions struct {
	kind   string
	memory string // --memory: a segment is stored at an eighth of it
	// checkpoint is --checkpoint-interval; a checkpoint stores every
	// segment open, whatever its size.
	checkpoint string
	// uploads times half the stops to multipart uploads in progress.
	uploads bool
}

var (
	// snapshotKind: segments of 1 MiB, each one request.
	snapshotKind = snapshotOptions{kind: "snapshot", memory: "8MiB", checkpoint: "3ms"}
	// multipartKind: segments sealed at 17 MiB, above storage's 16 MiB
	// part size, so that they go up as multipart uploads, and no
	// checkpoint but the last to store smaller ones before.
	multipartKind = snapshotOptions{kind: "multipart", memory: "136MiB", checkpoint: "1m", uploads: true}
)

// startLargeSource starts the source of the multipart trials: one
// partition of 18 MiB of incompressible values (plain and lz4 batches, a
// committed transaction), stored as a segment of two multipart parts and
// a small one. (One partition: each trial reads it back through franz-go
// and verify --deep, which under -race costs seconds a partition.)
func startLargeSource(t *testing.T) *crashSource {
	topics := map[string]int{"large": 1}
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(1, "large"))
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 18 {
		var rs []*kgo.Record
		for j := range 8 {
			value := make([]byte, 128<<10)
			for k := 0; k < len(value); k += 8 {
				binary.LittleEndian.PutUint64(value[k:], rng.Uint64())
			}
			rs = append(rs, &kgo.Record{Key: fmt.Appendf(nil, "l%d-%d", i, j), Value: value})
		}
		var o kfaketest.ProduceOptions
		if i%2 == 1 {
			o.Compression = kgo.Lz4Compression()
		}
		if i%9 == 4 {
			o.Txn = kfaketest.Commit
		}
		c.ProduceWith(t, o, "large", 0, rs...)
	}
	return &crashSource{c: c, live: brokerRecords(t, c, topics), topics: topics}
}

// each runs trial for every selected trial as a subtest, with the trial's
// own random source.
func (s crashSettings) each(t *testing.T, kind string, trial func(t *testing.T, r *rand.Rand)) {
	for i := range s.trials {
		if s.only >= 0 && i != s.only {
			continue
		}
		r := s.rng(kind, i)
		if !t.Run(fmt.Sprint("trial", i), func(t *testing.T) { trial(t, r) }) {
			t.Logf("trial %d failed: KTAPE_CRASH_SEED=%d KTAPE_CRASH_TRIAL=%d reruns it", i, s.seed, i)
		}
	}
}

// crashSnapshot: a snapshot backup of the source, stopped and resumed;
// the one backup it ends with must hold every offset of every partition
// exactly once, as the broker has it, with the group offsets.
func crashSnapshot(t *testing.T, cfg crashSettings, bin string, src *crashSource, store *crashStore, o snapshotOptions) {
	start := time.Now()
	kind := o.kind
	if store.s3 != nil {
		kind = "s3-" + kind
	}
	tally := &crashTally{Kind: kind, Seed: cfg.seed, Store: store.String()}
	args := func(dir string) []string {
		return []string{"backup", "--brokers", src.c.Addrs()[0], "--repo", dir, "--checkpoint-interval", o.checkpoint, "--memory", o.memory, "--json", "--progress-interval", "0"}
	}
	// The uninterrupted run, timed: stops land within its duration.
	var base time.Duration
	for range 3 {
		dir := store.newRepo(t, kind)
		t0 := time.Now()
		p := startProc(t, bin, args(dir)...)
		if !p.waitFor(time.Minute) || p.err != nil {
			p.signal(syscall.SIGKILL)
			t.Fatalf("uninterrupted backup: %v", p)
		}
		base = max(base, time.Since(t0))
		checkBackup(t, dir, src.live, src.groups, 1, &crashTally{})
		if o.uploads {
			// An uninterrupted run completes or aborts every upload.
			if n := store.uploads(t, dir); n != 0 {
				t.Fatalf("an uninterrupted backup left %d multipart uploads unfinished", n)
			}
		}
	}
	tally.Uninterrupted = base.Seconds()
	cfg.each(t, kind, func(t *testing.T, r *rand.Rand) {
		tally.Trials++
		dir := store.newRepo(t, kind)
		stops := planStops(r, base)
		var uploads func() int
		if o.uploads {
			uploadStops(r, stops)
			uploads = func() int { return store.uploads(t, dir) }
		}
		t.Logf("%s: stops %v", dir, stops)
		p := runStopped(t, bin, args(dir), stops, uploads, tally, func(code int) bool { return code == 130 }, func() bool {
			tally.Dangling += checkRefs(t, dir, tally)
			if backupMidway(t, dir) {
				tally.Midway++
			}
			return backupDone(t, dir)
		})
		m := checkBackup(t, dir, src.live, src.groups, 1, tally)
		store.leftovers(t, dir, tally)
		if p == nil {
			return // killed after it wrote the manifest
		}
		var done struct {
			Backup string `json:"backup"`
		}
		if err := json.Unmarshal(p.stdout.Bytes(), &done); err != nil || done.Backup == "" {
			t.Fatalf("backup --json: %v: %q", err, p.stdout.String())
		}
		if m.ID != done.Backup {
			t.Errorf("the last run reported backup %s, the repository holds %s", done.Backup, m.ID)
		}
	})
	tally.report(t, start)
}

// openRepo opens the repository in dir for reading.
func openRepo(t *testing.T, dir string) (*storage.Store, *repo.Repository) {
	t.Helper()
	ctx := context.Background()
	st, err := storage.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r, err := repo.Open(ctx, st, false)
	if err != nil {
		t.Fatalf("open the repository after the trial: %v", err)
	}
	return st, r
}

// checkRefs counts the objects that the repository's manifests and
// checkpoints name and that do not exist; it fails on a manifest or
// checkpoint that cannot be read (a resume would fail on it). It adds the
// repository's unreferenced objects to the tally's orphans. A repository
// not initialised yet (a run killed at once) has nothing to check.
func checkRefs(t *testing.T, dir string, tally *crashTally) int {
	t.Helper()
	ctx := context.Background()
	st, err := storage.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := repo.Open(ctx, st, false)
	if err != nil {
		// Stopped before it wrote the repository descriptor (the
		// resumed run writes it): nothing is named yet.
		return 0
	}
	var ms []*repo.Manifest
	ids, err := r.Backups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		m, err := r.Manifest(ctx, id)
		if err != nil {
			t.Fatalf("backup %s: %v", id, err)
		}
		ms = append(ms, m)
	}
	runs, err := r.Unfinished(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, run := range runs {
		for _, seq := range run.Checkpoints {
			m, err := r.Checkpoint(ctx, run.ID, seq)
			if err != nil {
				t.Fatalf("run %s: %v", run.ID, err)
			}
			ms = append(ms, m)
		}
	}
	dangling := 0
	for _, m := range ms {
		for _, tp := range m.Topics {
			for _, p := range tp.Partitions {
				for _, s := range p.Segments {
					for _, key := range []string{s.Key, repo.IndexKey(s.Key)} {
						if ok, err := st.Exists(ctx, key); err != nil {
							t.Fatal(err)
						} else if !ok {
							t.Errorf("%s (checkpoint %v) names %s, which does not exist", m.ID, m.Checkpoint, key)
							dangling++
						}
					}
				}
			}
		}
	}
	if orphans, err := r.Unreferenced(ctx); err != nil {
		t.Fatal(err)
	} else {
		tally.Orphans += len(orphans)
	}
	return dangling
}

// backupDone reports whether the repository in dir holds a complete
// backup.
func backupDone(t *testing.T, dir string) bool {
	ctx := context.Background()
	st, err := storage.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := repo.Open(ctx, st, false)
	if err != nil {
		return false // not initialised yet
	}
	ids, err := r.Backups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return len(ids) > 0
}

// backupMidway reports whether the newest checkpoint of the unfinished
// run in dir holds some records and, for a snapshot, not all of them.
func backupMidway(t *testing.T, dir string) bool {
	ctx := context.Background()
	st, err := storage.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := repo.Open(ctx, st, false)
	if err != nil {
		return false // not initialised yet
	}
	runs, err := r.Unfinished(ctx)
	if err != nil || len(runs) == 0 {
		return false
	}
	run := runs[len(runs)-1]
	m, err := r.Checkpoint(ctx, run.ID, run.Checkpoints[len(run.Checkpoints)-1])
	if err != nil {
		t.Fatal(err)
	}
	some, all := false, true
	for _, tp := range m.Topics {
		for _, p := range tp.Partitions {
			some = some || p.To > p.From
			all = all && p.To >= p.HighWatermark
		}
	}
	return some && (m.Mode == "continuous" || !all)
}

// checkBackup judges the repository in dir after a trial's last run: it
// holds backups whole (each continuing the one before), the newest covers
// every partition from offset 0 to the end the broker has (live), each
// offset once, and its records, decoded by franz-go, equal the broker's;
// verify --deep passes; nothing named is missing. With groups, the
// backup's group offsets are those. It returns the newest backup.
func checkBackup(t *testing.T, dir string, live map[string][][]*kgo.Record, groups map[string]map[string]map[int32]int64, backups int, tally *crashTally) *repo.Manifest {
	t.Helper()
	ctx := context.Background()
	st, r := openRepo(t, dir)
	ids, err := r.Backups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) == 0 || backups > 0 && len(ids) != backups {
		t.Fatalf("%d backups in the repository (%v), want %d", len(ids), ids, backups)
	}
	var m *repo.Manifest
	for i, id := range ids {
		if m, err = r.Manifest(ctx, id); err != nil {
			t.Fatal(err)
		}
		if i > 0 && m.Parent != ids[i-1] {
			t.Errorf("backup %s continues %q, not the backup before it, %s", id, m.Parent, ids[i-1])
		}
	}
	tally.Dangling += checkRefs(t, dir, tally)
	for topic, parts := range live {
		mt := m.Topic(topic)
		if mt == nil {
			t.Errorf("backup %s lacks topic %s", m.ID, topic)
			for _, rs := range parts {
				tally.Missing += int64(len(rs))
			}
			continue
		}
		for pi, rs := range parts {
			tally.Records += int64(len(rs))
			mp := mt.Partition(int32(pi))
			if mp == nil {
				t.Errorf("backup %s lacks %s/%d", m.ID, topic, pi)
				tally.Missing += int64(len(rs))
				continue
			}
			if mp.From != 0 || mp.To != int64(len(rs)) {
				t.Errorf("backup %s: %s/%d covers [%d, %d), the broker holds [0, %d)", m.ID, topic, pi, mp.From, mp.To, len(rs))
			}
			// Each segment decoded on its own, so that an offset stored
			// twice is counted rather than refused.
			seen := map[int64]int{}
			var stored []*kgo.Record
			for _, ref := range mp.Segments {
				one := *mp
				one.Segments = []repo.SegmentRef{ref}
				got, err := crosscheck.RepositoryRecords(ctx, st, topic, &one)
				if err != nil {
					t.Fatalf("backup %s: %v", m.ID, err)
				}
				for _, s := range got {
					seen[s.Offset]++
				}
				stored = append(stored, got...)
			}
			var missing, dup, extra []int64
			for _, l := range rs {
				switch n := seen[l.Offset]; {
				case n == 0:
					missing = append(missing, l.Offset)
				case n > 1:
					dup = append(dup, l.Offset)
					tally.Duplicated += int64(n - 1)
				}
				delete(seen, l.Offset)
			}
			for off := range seen {
				extra = append(extra, off)
			}
			tally.Missing += int64(len(missing))
			tally.Misplaced += int64(len(extra))
			if len(missing)+len(dup)+len(extra) > 0 {
				t.Errorf("backup %s: %s/%d: offsets missing %v, stored more than once %v, stored but not on the broker %v", m.ID, topic, pi, missing, dup, extra)
				continue
			}
			// Each offset once: the contents, field by field, against
			// the broker's.
			if err := crosscheck.Compare(topic, int32(pi), stored, rs); err != nil {
				tally.Misplaced++
				t.Errorf("backup %s: %v", m.ID, err)
			}
		}
	}
	if code, out, errOut := runKtape(t, "verify", "--repo", dir, "--deep", m.ID); code != 0 {
		t.Errorf("verify --deep %s: exit %d\n%s%s", m.ID, code, out, errOut)
	}
	if groups != nil {
		got := map[string]map[string]map[int32]int64{}
		for _, g := range m.Groups {
			for _, o := range g.Offsets {
				if got[g.Group] == nil {
					got[g.Group] = map[string]map[int32]int64{}
				}
				if got[g.Group][o.Topic] == nil {
					got[g.Group][o.Topic] = map[int32]int64{}
				}
				got[g.Group][o.Topic][o.Partition] = o.Offset
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(groups) {
			t.Errorf("backup %s: group offsets %v, committed %v", m.ID, got, groups)
		}
	}
	return m
}

// crashContinuous: a continuous backup of two topics that keep receiving
// records (plain, lz4, aborted transactions), stopped and resumed while
// the records arrive, then stopped with SIGINT once it has caught up. A
// SIGTERM ends a run with a complete backup, which the next run continues
// (incremental): the newest backup must hold every record the broker has,
// once, and each backup must continue the one before it.
func crashContinuous(t *testing.T, cfg crashSettings, bin string, store *crashStore) {
	start := time.Now()
	kind := "continuous"
	if store.s3 != nil {
		kind = "s3-" + kind
	}
	tally := &crashTally{Kind: kind, Seed: cfg.seed, Store: store.String()}
	const produceFor = 400 * time.Millisecond
	tally.Uninterrupted = produceFor.Seconds()
	cfg.each(t, kind, func(t *testing.T, r *rand.Rand) {
		tally.Trials++
		c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(2, "orders"), kfaketest.Topics(1, "events"))
		dir := store.newRepo(t, kind)
		args := []string{"backup", "--mode", "continuous", "--brokers", c.Addrs()[0], "--repo", dir, "--checkpoint-interval", "10ms",
			"--memory", "8MiB", "--json", "--progress-interval", "0"}
		stops := planStops(r, produceFor)
		t.Logf("stops %v", stops)
		produced := produceWhile(t, c, produceFor)
		graceful := 0
		for i, s := range stops {
			if i > 0 {
				tally.Resumes++
			}
			p := startProc(t, bin, args...)
			if p.waitFor(s.delay) {
				t.Fatalf("run %d of a continuous backup exited by itself:\n%v", i, p)
			}
			if !p.signal(s.sig) {
				t.Fatalf("run %d of a continuous backup exited by itself:\n%v", i, p)
			}
			switch {
			case p.crashed():
				t.Fatalf("run %d (stop %v) crashed:\n%v", i, s, p)
			case s.sig == syscall.SIGKILL:
				tally.Kills++
			case p.err == nil: // stopped gracefully: a complete backup
				tally.Terms++
				graceful++
			case p.code() == -1: // the signal came before the handler
				tally.Kills++
			default:
				t.Fatalf("run %d (stop %v) failed:\n%v", i, s, p)
			}
			tally.Dangling += checkRefs(t, dir, tally)
			if backupMidway(t, dir) {
				tally.Midway++
			}
		}
		tally.Resumes++
		after := newestCheckpoint(t, dir)
		p := startProc(t, bin, args...)
		if err := <-produced; err != nil {
			p.signal(syscall.SIGKILL)
			t.Fatal(err)
		}
		live := brokerRecords(t, c, crashTopics)
		if err := caughtUp(t, dir, live, p, after); err != nil {
			p.signal(syscall.SIGKILL)
			t.Fatalf("%v\n%v", err, p)
		}
		p.signal(syscall.SIGINT)
		if p.err != nil || p.crashed() {
			t.Fatalf("the last run, stopped by SIGINT:\n%v", p)
		}
		var done struct {
			Backup string `json:"backup"`
		}
		if err := json.Unmarshal(p.stdout.Bytes(), &done); err != nil || done.Backup == "" {
			t.Fatalf("backup --json: %v: %q", err, p.stdout.String())
		}
		m := checkBackup(t, dir, live, nil, 0, tally)
		store.leftovers(t, dir, tally)
		if m.ID != done.Backup {
			t.Errorf("the last run reported backup %s, the newest in the repository is %s", done.Backup, m.ID)
		}
	})
	tally.report(t, start)
}

// produceWhile writes records to the cluster's topics for about d, from a
// goroutine (plain and lz4 batches, a transaction aborted now and then),
// and reports the first error, or nil when done.
func produceWhile(t *testing.T, c *kfaketest.Cluster, d time.Duration) <-chan error {
	done := make(chan error, 1)
	plain := c.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	lz4 := c.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.Lz4Compression()), kgo.ProducerLinger(0))
	txn := c.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionalID(fmt.Sprintf("crash-%p", c)))
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		end := time.Now().Add(d)
		for i := 0; time.Now().Before(end); i++ {
			rs := []*kgo.Record{
				{Topic: "orders", Partition: int32(i % 2), Key: fmt.Appendf(nil, "o%d-a", i), Value: bytes.Repeat([]byte{byte(i)}, 200)},
				{Topic: "orders", Partition: int32(i % 2), Key: fmt.Appendf(nil, "o%d-b", i), Value: bytes.Repeat([]byte{byte(i)}, 300)},
				{Topic: "events", Partition: 0, Key: fmt.Appendf(nil, "e%d", i), Value: fmt.Appendf(nil, "event %d", i)},
			}
			cl := plain
			switch {
			case i%7 == 6:
				cl = txn
				if err := cl.BeginTransaction(); err != nil {
					done <- fmt.Errorf("produce round %d: begin transaction: %w", i, err)
					return
				}
			case i%2 == 1:
				cl = lz4
			}
			if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
				done <- fmt.Errorf("produce round %d: %w", i, err)
				return
			}
			if cl == txn {
				if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
					done <- fmt.Errorf("produce round %d: abort: %w", i, err)
					return
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
		done <- nil
	}()
	return done
}

// newestCheckpoint returns the sequence number of the newest checkpoint
// in dir, 0 if there is none.
func newestCheckpoint(t *testing.T, dir string) int {
	ctx := context.Background()
	st, err := storage.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := repo.Open(ctx, st, false)
	if err != nil {
		return 0 // not initialised yet
	}
	runs, err := r.Unfinished(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) == 0 {
		return 0
	}
	cps := runs[len(runs)-1].Checkpoints
	return cps[len(cps)-1]
}

// caughtUp waits until the running continuous backup p has committed a
// checkpoint, after checkpoint number after, that reaches the end of
// every partition in live. (A checkpoint that a killed run left may
// reach it too, but p may not be ready for SIGINT yet then.)
func caughtUp(t *testing.T, dir string, live map[string][][]*kgo.Record, p *proc, after int) error {
	ctx := context.Background()
	st, err := storage.Open(ctx, dir)
	if err != nil {
		return err
	}
	defer st.Close()
	r, err := repo.Open(ctx, st, false)
	if err != nil {
		return err
	}
	var last error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		select {
		case <-p.exited:
			return errors.New("the continuous backup exited by itself")
		default:
		}
		last = func() error {
			runs, err := r.Unfinished(ctx)
			if err != nil || len(runs) == 0 {
				return fmt.Errorf("no unfinished run (%v)", err)
			}
			run := runs[len(runs)-1]
			seq := run.Checkpoints[len(run.Checkpoints)-1]
			if seq <= after {
				return fmt.Errorf("no checkpoint after %d yet", after)
			}
			m, err := r.Checkpoint(ctx, run.ID, seq)
			if err != nil {
				return err // deleted meanwhile by the next checkpoint
			}
			for topic, parts := range live {
				for pi, rs := range parts {
					if mp := m.Topic(topic).Partition(int32(pi)); mp == nil || mp.To < int64(len(rs)) {
						return fmt.Errorf("the newest checkpoint has not reached the end of %s/%d (%d)", topic, pi, len(rs))
					}
				}
			}
			return nil
		}()
		if last == nil {
			return nil
		}
	}
	return fmt.Errorf("the continuous backup did not catch up in 30s: %w", last)
}

// targetRecord is a restored record as compared: where it is and what
// it holds.
type targetRecord struct {
	topic     string
	partition int32
	offset    int64
	what      string // key, value digest, headers, timestamp
}

func describeRecord(r *kgo.Record) string {
	h := sha256.Sum256(r.Value)
	return fmt.Sprintf("%q %x null=%v %v %d", r.Key, h[:8], r.Value == nil, r.Headers, r.Timestamp.UnixMilli())
}

// restoredState is what a restore left in its target: every record
// (read_committed, by key) and the groups' committed offsets.
type restoredState struct {
	records map[string][]targetRecord // key → where it is (more than one: duplicated)
	groups  map[string]map[string]map[int32]int64
	n       int
	// keys are the records' keys by topic, partition and offset, for the
	// offset maps.
	keys map[string]map[int32]map[int64]string
}

// String renders what is compared between two targets.
func (s restoredState) String() string { return fmt.Sprint(s.records, s.groups) }

func readTarget(t *testing.T, c *kfaketest.Cluster) restoredState {
	s := restoredState{records: map[string][]targetRecord{}, keys: map[string]map[int32]map[int64]string{}}
	for topic := range crashTopics {
		s.keys[topic] = map[int32]map[int64]string{}
		for _, r := range c.ConsumeAll(t, topic, kgo.ReadCommitted()) {
			s.records[string(r.Key)] = append(s.records[string(r.Key)], targetRecord{topic, r.Partition, r.Offset, describeRecord(r)})
			s.n++
			if s.keys[topic][r.Partition] == nil {
				s.keys[topic][r.Partition] = map[int64]string{}
			}
			s.keys[topic][r.Partition][r.Offset] = string(r.Key)
		}
	}
	s.groups = fetchOffsets(t, c.Client(t, namedTopics), "g1", "g2")
	return s
}

// crashRestore: the source's backup restored into an empty cluster (with
// --groups), stopped and resumed; the target must hold exactly what an
// uninterrupted restore's target holds, at the same offsets, with the same
// group offsets, and the restore log must be complete and agree with it.
func crashRestore(t *testing.T, cfg crashSettings, bin string, src *crashSource, store *crashStore) {
	start := time.Now()
	kind := "restore"
	if store.s3 != nil {
		kind = "s3-" + kind
	}
	tally := &crashTally{Kind: kind, Seed: cfg.seed, Store: store.String()}
	backupDir := store.newRepo(t, kind)
	if code, _, errOut := runKtape(t, "backup", "--brokers", src.c.Addrs()[0], "--repo", backupDir); code != 0 {
		t.Fatalf("backup: %d %s", code, errOut)
	}
	// Source records by topic, partition and offset, for the offset maps.
	sourceKeys := map[string]map[int32]map[int64]string{}
	for topic, parts := range src.live {
		sourceKeys[topic] = map[int32]map[int64]string{}
		for pi, rs := range parts {
			sourceKeys[topic][int32(pi)] = map[int64]string{}
			for _, r := range rs {
				sourceKeys[topic][int32(pi)][r.Offset] = string(r.Key)
			}
		}
	}
	args := func(dir string, c *kfaketest.Cluster) []string {
		return []string{"restore", "--brokers", c.Addrs()[0], "--repo", dir, "--groups", "--rate-limit", "32MiB", "--memory", "8MiB",
			"--json", "--progress-interval", "0"}
	}
	// The uninterrupted restore, timed; its target is the reference.
	var base time.Duration
	var want restoredState
	for i := range 2 {
		dir, c := store.copyRepo(t, kind, backupDir), kfaketest.Start(t, kfaketest.Brokers(1))
		t0 := time.Now()
		p := startProc(t, bin, args(dir, c)...)
		if !p.waitFor(time.Minute) || p.err != nil {
			p.signal(syscall.SIGKILL)
			t.Fatalf("uninterrupted restore: %v", p)
		}
		base = max(base, time.Since(t0))
		got := readTarget(t, c)
		if i == 0 {
			want = got
		} else if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatal("two uninterrupted restores differ")
		}
		checkRestoreLog(t, dir, got.keys, sourceKeys, &crashTally{})
	}
	if want.n == 0 || len(want.groups) != 2 {
		t.Fatalf("the reference restore holds %d records and groups %v", want.n, want.groups)
	}
	tally.Uninterrupted = base.Seconds()
	cfg.each(t, kind, func(t *testing.T, r *rand.Rand) {
		tally.Trials++
		dir, c := store.copyRepo(t, kind, backupDir), kfaketest.Start(t, kfaketest.Brokers(1))
		stops := planStops(r, base)
		t.Logf("stops %v", stops)
		runStopped(t, bin, args(dir, c), stops, nil, tally, func(code int) bool { return code == 1 }, func() bool {
			if n := restoredSoFar(t, c); n > 0 && n < int64(want.n) {
				tally.Midway++
			}
			return false // a restore run again after it finished only checks it
		})
		got := readTarget(t, c)
		tally.Records += int64(want.n)
		for key, where := range want.records {
			switch g := got.records[key]; {
			case len(g) == 0:
				tally.Missing++
				t.Errorf("%s: missing from the target", key)
			case len(g) > 1:
				tally.Duplicated += int64(len(g) - 1)
				t.Errorf("%s: %d times in the target: %v", key, len(g), g)
			case g[0] != where[0]:
				tally.Misplaced++
				t.Errorf("%s: %+v in the target, %+v after an uninterrupted restore", key, g[0], where[0])
			}
		}
		for key, g := range got.records {
			if _, ok := want.records[key]; !ok {
				tally.Misplaced += int64(len(g))
				t.Errorf("%s: in the target, not after an uninterrupted restore: %v", key, g)
			}
		}
		if fmt.Sprint(got.groups) != fmt.Sprint(want.groups) {
			tally.Misplaced++
			t.Errorf("group offsets %v, after an uninterrupted restore %v", got.groups, want.groups)
		}
		checkRestoreLog(t, dir, got.keys, sourceKeys, tally)
		store.leftovers(t, dir, tally)
	})
	tally.report(t, start)
}

// restoredSoFar counts the records in the target's restored topics (none
// when they do not exist yet).
func restoredSoFar(t *testing.T, c *kfaketest.Cluster) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc := crosscheck.NewCluster(c.Client(t))
	var n int64
	for topic := range crashTopics {
		ct, err := cc.Topic(ctx, topic)
		if err != nil {
			continue // not created yet
		}
		offs, err := cc.Offsets(ctx, ct, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range offs {
			n += o.End - o.LogStart
		}
	}
	return n
}

// copyDir copies a directory tree (a repository) into a new temporary
// one: a restore writes its log into its repository.
func copyDir(t *testing.T, dir string) string {
	out := t.TempDir()
	if err := os.CopyFS(out, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkRestoreLog checks the restore log a finished restore left in dir:
// one restore, done; each target partition's recorded end is the
// target's, and each offset map entry puts the source record it names
// first and last at the target offsets it names. targetKeys are the
// target's records (the restore writes no transactions, so a
// read_committed read sees every one).
func checkRestoreLog(t *testing.T, dir string, targetKeys, sourceKeys map[string]map[int32]map[int64]string, tally *crashTally) {
	t.Helper()
	ctx := context.Background()
	st, r := openRepo(t, dir)
	keys, err := st.List(ctx, "restores/")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, k := range keys {
		ids[strings.Split(k, "/")[1]] = true
	}
	if len(ids) != 1 {
		t.Fatalf("%d restores logged (%v), want 1", len(ids), keys)
	}
	var id string
	for id = range ids {
	}
	done, err := r.RestoreDone(ctx, id)
	if err != nil || done == nil {
		t.Fatalf("restore %s: not recorded as done (%v)", id, err)
	}
	if len(done.Partitions) != 4 {
		t.Errorf("restore %s: %d partitions recorded, want 4", id, len(done.Partitions))
	}
	for _, p := range done.Partitions {
		if p.Start != 0 || p.End != int64(len(targetKeys[p.Topic][p.Partition])) {
			t.Errorf("restore %s: %s/%d recorded as [%d, %d), the target holds %d records", id, p.Topic, p.Partition, p.Start, p.End, len(targetKeys[p.Topic][p.Partition]))
		}
		if ok, err := st.Exists(ctx, p.Map); err != nil || !ok {
			tally.Dangling++
			t.Errorf("restore %s: offset map %s: exists %v, %v", id, p.Map, ok, err)
			continue
		}
		m, err := r.OffsetMap(ctx, p.Map)
		if err != nil {
			t.Fatalf("restore %s: %v", id, err)
		}
		var records, batches int64
		err = m.Each(func(e repo.OffsetMapEntry) error {
			src, tgt := sourceKeys[p.Topic][p.Partition], targetKeys[p.Topic][p.Partition]
			if src[e.SourceFirst] != tgt[e.TargetBase] || src[e.SourceLast] != tgt[e.TargetBase+e.Records-1] || tgt[e.TargetBase] == "" {
				return fmt.Errorf("entry %+v: source %q..%q, target %q..%q", e, src[e.SourceFirst], src[e.SourceLast], tgt[e.TargetBase], tgt[e.TargetBase+e.Records-1])
			}
			records += e.Records
			batches++
			return nil
		})
		if err == nil && (records != p.End-p.Start || batches != p.Batches) {
			err = fmt.Errorf("%d records in %d batches mapped, %d in %d recorded", records, batches, p.End-p.Start, p.Batches)
		}
		if err != nil {
			tally.Misplaced++
			t.Errorf("restore %s: offset map of %s/%d: %v", id, p.Topic, p.Partition, err)
		}
	}
	if len(done.Groups) != 2 {
		t.Errorf("restore %s: %d groups recorded, want 2", id, len(done.Groups))
	}
}
