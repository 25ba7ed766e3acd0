package restore

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ktape/ktape/backup"
	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/internal/crosscheck"
	"github.com/ktape/ktape/internal/faultproxy"
	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/internal/s3test"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
)

// flakyS3 is an S3 server (versitygw) behind a fault-injecting proxy:
// direct reaches the server, proxied goes through the proxy.
type flakyS3 struct {
	proxy           *faultproxy.Proxy
	direct, proxied string
	directSt, flaky *storage.Store
	directR, flakyR *repo.Repository
}

// startFlakyS3 starts the server and the proxy (passing everything until
// told otherwise) and opens the repository both ways; the proxied store
// retries 10 times from 5 ms, so that a test's transient faults are
// retried quickly. Under ktape's retries, the AWS SDK makes 3 attempts of
// its own (gocloud.dev installs that retryer; a URL cannot change it),
// with a backoff of up to a second or two: that, not ktape, is where
// these tests spend their time.
func startFlakyS3(t *testing.T) *flakyS3 {
	t.Helper()
	direct := s3test.Start(t)
	if direct == "" {
		t.Skip("versitygw not installed")
	}

	u, err := url.Parse(direct)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	fs := &flakyS3{direct: direct, proxy: faultproxy.Start(t, q.Get("endpoint"), faultproxy.Config{})}
	q.Set("endpoint", fs.proxy.URL)
	u.RawQuery = q.Encode()
	fs.proxied = u.String()
	ctx := context.Background()
	if fs.directSt, err = storage.Open(ctx, fs.direct); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.directSt.Close() })
	if fs.flaky, err = storage.Open(ctx, fs.proxied); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.flaky.Close() })
	fs.flaky.Retry = storage.Retry{Attempts: 10, Base: 5 * time.Millisecond}
	if fs.flakyR, err = repo.Open(ctx, fs.flaky, true); err != nil {
		t.Fatal(err)
	}
	if fs.directR, err = repo.Open(ctx, fs.directSt, false); err != nil {
		t.Fatal(err)
	}
	return fs
}

// segmentRequest selects requests for segment objects (data and index).
func segmentRequest(method string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return r.Method == method && strings.Contains(r.URL.Path, "/segments/")
	}
}

// consistent checks the repository as it stands, read directly: every
// complete backup and every checkpoint of an unfinished run passes
// verify --deep, so no manifest names an object that is missing or
// differs from what it says.
func (fs *flakyS3) consistent(t *testing.T) (backups, checkpoints int) {
	t.Helper()
	ctx := context.Background()
	ids, err := fs.directR.Backups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		m, err := fs.directR.Manifest(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if errs := fs.directR.Verify(ctx, m, true); len(errs) > 0 {
			t.Fatalf("backup %s: verify --deep: %v", id, errs)
		}
	}
	runs, err := fs.directR.Unfinished(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, run := range runs {
		for _, seq := range run.Checkpoints {
			m, err := fs.directR.Checkpoint(ctx, run.ID, seq)
			if err != nil {
				t.Fatal(err)
			}
			if errs := fs.directR.Verify(ctx, m, true); len(errs) > 0 {
				t.Fatalf("run %s, checkpoint %d: verify --deep: %v", run.ID, seq, errs)
			}
			checkpoints++
		}
	}
	return len(ids), checkpoints
}

// Backups, verify --deep and a restore, all through an S3 proxy that
// answers 503 to 4% of requests, resets 3% before and 6% after the
// server acted (a PUT stored, its answer lost), holds 5% for 50 ms and
// cuts 4% of bodies short (with KTAPE_LONG=1: 12%, 8%, 8%, 5%, 12%): the faults are retried, the backup is exact
// against the broker (read directly from the server), and the target
// holds the source exactly.
func TestBackupRestoreThroughFlakyS3(t *testing.T) {
	s3 := startFlakyS3(t)
	src := fillFaultSource(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The default run is kept short; KTAPE_LONG=1 triples the fault
	// rates and doubles the backups.
	rounds, rates := 2, map[faultproxy.Fault]float64{
		faultproxy.ServerError: 0.04, faultproxy.Reset: 0.03, faultproxy.ResetAfter: 0.06, faultproxy.Slow: 0.05, faultproxy.Truncate: 0.04,
	}
	if os.Getenv("KTAPE_LONG") != "" {
		rounds, rates = 4, map[faultproxy.Fault]float64{
			faultproxy.ServerError: 0.12, faultproxy.Reset: 0.08, faultproxy.ResetAfter: 0.08, faultproxy.Slow: 0.05, faultproxy.Truncate: 0.12,
		}
	}
	if err := s3.proxy.Set(faultproxy.Config{Seed: 8, Delay: 50 * time.Millisecond, Rates: rates}); err != nil {
		t.Fatal(err)
	}
	sc, err := client.New(ctx, src.src.Addrs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	// Backups each continuing the one before with a round more of data,
	// so that the restore reads many segments.
	start := time.Now()
	var m *repo.Manifest
	segments := 0
	for round := range rounds {
		if round > 0 {
			for p := range faultParts {
				src.src.Produce(t, "t", int32(p), faultBatch(p, faultRounds+round)...)
			}
		}
		var bst backup.Stats
		if m, bst, err = backup.Run(ctx, sc, s3.flakyR, backup.Options{SkipGroups: true}); err != nil {
			t.Fatalf("backup %d through the flaky proxy: %v", round, err)
		}
		segments += bst.Segments
		if errs := s3.flakyR.Verify(ctx, m, true); len(errs) > 0 {
			t.Fatalf("verify --deep through the proxy: %v", errs)
		}
	}
	backupTook := time.Since(start)
	src.want = src.src.ConsumeAll(t, "t")
	s3.consistent(t)
	res, err := crosscheck.Backup(ctx, crosscheck.NewCluster(src.src.Client(t)), s3.directSt, m)
	if err != nil {
		t.Fatal(err)
	}
	if int(res.Records) != len(src.want) {
		t.Fatalf("the backup holds %d records, the source %d", res.Records, len(src.want))
	}
	afterBackup := s3.proxy.Counts()

	dst := kfaketest.Start(t, kfaketest.Brokers(1))
	dc, err := client.New(ctx, dst.Addrs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	start = time.Now()
	rst, err := Run(ctx, dc, s3.flakyR, m, Options{})
	if err != nil {
		t.Fatalf("restore through the flaky proxy: %v", err)
	}
	restoreTook := time.Since(start)
	lost, dup := src.compare(t, dst.ConsumeAll(t, "t"))
	if s3.proxy.Injected() < 5 {
		t.Fatalf("only %d faults injected: %v", s3.proxy.Injected(), s3.proxy.Counts())
	}
	t.Logf("FIGURES storage=flaky-s3 segments=%d batches=%d faults after %d backups+verify=%v faults total=%v backups=%v restore=%v lost=%d duplicated=%d",
		segments, rst.Batches, rounds, afterBackup, s3.proxy.Counts(), backupTook.Round(time.Millisecond), restoreTook.Round(time.Millisecond), lost, dup)
}

// Faults that do not pass. Segment uploads answered 503 every time fail
// the backup with an error naming the object and the answer; the
// repository keeps its earlier backup whole, holds no manifest for the
// failed run and only checkpoints that name stored data; with the store
// healed the run resumes to an exact backup. Segment reads cut short
// every time fail the restore with a clear error — the truncated body is
// never taken as data: what the target got is a prefix of the source —
// and with the store healed the restore resumes to an exact result.
func TestFlakyS3PersistentFaults(t *testing.T) {
	s3 := startFlakyS3(t)
	src := fillFaultSource(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sc, err := client.New(ctx, src.src.Addrs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	opts := backup.Options{SegmentBytes: 8 << 10, SkipGroups: true}

	// A first backup, clean; then more data and a run whose segment
	// uploads all fail after the first few.
	first, _, err := backup.Run(ctx, sc, s3.flakyR, opts)
	if err != nil {
		t.Fatal(err)
	}
	for p := range faultParts {
		src.src.Produce(t, "t", int32(p), faultBatch(p, faultRounds)...)
	}
	src.want = src.src.ConsumeAll(t, "t")
	s3.flaky.Retry.Attempts = 2 // the fault does not pass: give up sooner
	puts := 0
	s3.proxy.Set(faultproxy.Config{Rates: map[faultproxy.Fault]float64{faultproxy.ServerError: 1}, Match: func(r *http.Request) bool {
		if !segmentRequest(http.MethodPut)(r) {
			return false
		}
		puts++ // under the proxy's lock
		return puts > 2
	}})
	_, _, err = backup.Run(ctx, sc, s3.flakyR, backup.Options{SegmentBytes: 8 << 10, SkipGroups: true, Full: true})
	if err == nil {
		t.Fatal("the backup succeeded while every segment upload failed")
	}
	if !strings.Contains(err.Error(), "segments/t/") || !strings.Contains(err.Error(), "503") {
		t.Fatalf("error %q: want it to name the segment and the 503", err)
	}
	backupFailure := err
	if ids, _ := s3.directR.Backups(ctx); len(ids) != 1 || ids[0] != first.ID {
		t.Fatalf("backups after the failure: %v, want only %s", ids, first.ID)
	}
	nb, ncp := s3.consistent(t)

	s3.proxy.Set(faultproxy.Config{})
	s3.flaky.Retry.Attempts = 10
	m, st, err := backup.Run(ctx, sc, s3.flakyR, backup.Options{SegmentBytes: 8 << 10, SkipGroups: true, Full: true})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Resumed {
		t.Fatalf("the healed run did not resume the failed one: %+v", st)
	}
	s3.consistent(t)
	if res, err := crosscheck.Backup(ctx, crosscheck.NewCluster(src.src.Client(t)), s3.directSt, m); err != nil || int(res.Records) != len(src.want) {
		t.Fatalf("crosscheck: %+v, %v; want %d records", res, err, len(src.want))
	}

	// Restore with every segment read cut short.
	s3.flaky.Retry.Attempts = 2
	s3.proxy.Set(faultproxy.Config{Rates: map[faultproxy.Fault]float64{faultproxy.Truncate: 1}, Match: func(r *http.Request) bool {
		return segmentRequest(http.MethodGet)(r) && strings.HasSuffix(r.URL.Path, ".seg")
	}})
	dst := kfaketest.Start(t, kfaketest.Brokers(1))
	dc, err := client.New(ctx, dst.Addrs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	_, err = Run(ctx, dc, s3.flakyR, m, Options{})
	if err == nil {
		t.Fatal("the restore succeeded while every segment read was cut short")
	}
	if !strings.Contains(err.Error(), "segments/t/") {
		t.Fatalf("error %q: want it to name the segment", err)
	}
	restoreFailure := err
	// Nothing but a prefix of each source partition reached the target.
	partial := map[int32]int{}
	for _, r := range dst.ConsumeAll(t, "t") {
		i := partial[r.Partition]
		var w = src.want[0]
		k := 0
		for _, x := range src.want {
			if x.Partition == r.Partition {
				if k == i {
					w = x
					break
				}
				k++
			}
		}
		if w.Partition != r.Partition || string(w.Key) != string(r.Key) || string(w.Value) != string(r.Value) {
			t.Fatalf("the failed restore wrote %d/%d %q, not the source's next record", r.Partition, r.Offset, r.Key)
		}
		partial[r.Partition]++
	}
	s3.proxy.Set(faultproxy.Config{})
	s3.flaky.Retry.Attempts = 10
	rst, err := Run(ctx, dc, s3.flakyR, m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	lost, dup := src.compare(t, dst.ConsumeAll(t, "t"))
	t.Logf("FIGURES storage=s3-persistent backups-kept=%d checkpoints-verified=%d backup-error=%q restore-error=%q partial-before-heal=%v resumed=%v lost=%d duplicated=%d",
		nb, ncp, backupFailure, restoreFailure, partial, rst.Resumed, lost, dup)
}
