package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/internal/repotest"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
	"github.com/twmb/franz-go/pkg/kgo"
)

// built is the ktape binary the process tests share: built once per test
// binary, into a directory TestMain removes.
var built struct {
	once sync.Once
	dir  string
	bin  string
	err  error
	out  []byte
}

// buildKtape builds the ktape binary for tests that need a real process,
// once for all of them (without -race: the binary under test is the
// product as shipped, and the trials start it hundreds of times).
func buildKtape(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "ktape-bin-"); built.err != nil {
			return
		}
		built.bin = filepath.Join(built.dir, "ktape")
		built.out, built.err = exec.Command("go", "build", "-o", built.bin, ".").CombinedOutput()
	})
	if built.err != nil {
		t.Fatalf("go build: %v\n%s", built.err, built.out)
	}
	return built.bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// runOrKill runs ktape with args and returns its output if it succeeds
// within limit; otherwise it kills it with SIGKILL (no chance to clean
// up) and reports that. A failure is fatal.
func runOrKill(t *testing.T, bin string, args []string, limit time.Duration) (stdout []byte, killed bool) {
	t.Helper()
	p := startProc(t, bin, args...)
	if !p.waitFor(limit) {
		p.signal(syscall.SIGKILL)
		return nil, true
	}
	if p.err != nil {
		t.Fatalf("%s: %v\n%s", args[0], p.err, p.stderr.String())
	}
	return p.stdout.Bytes(), false
}

// proc is a ktape process under test.
type proc struct {
	args           []string
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	exited         chan struct{}
	err            error // from Wait, once exited is closed
}

func startProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{args: args, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	return p
}

// waitFor reports whether the process exited within d.
func (p *proc) waitFor(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-p.exited:
		return true
	case <-timer.C:
		return false
	}
}

// signal sends sig and waits for the process to exit; it reports whether
// the signal found it running.
func (p *proc) signal(sig syscall.Signal) bool {
	select {
	case <-p.exited:
		return false
	default:
	}
	landed := p.cmd.Process.Signal(sig) == nil
	<-p.exited
	return landed
}

// code is the exit status, or -1 when a signal ended the process.
func (p *proc) code() int { return p.cmd.ProcessState.ExitCode() }

// crashed reports a Go runtime crash in the process's standard error: a
// run may be stopped, never panic.
func (p *proc) crashed() bool {
	s := p.stderr.String()
	return strings.Contains(s, "panic:") || strings.Contains(s, "fatal error:") || strings.Contains(s, "goroutine ")
}

func (p *proc) String() string {
	return fmt.Sprintf("ktape %s: %v\nstdout: %s\nstderr: %s", strings.Join(p.args, " "), p.err, p.stdout.String(), p.stderr.String())
}

// A backup killed with SIGKILL again and again, at points further and
// further in, then allowed to finish: the backup it finally writes is
// the first run's, resumed from checkpoints; verify --deep is clean, and
// the repository holds every record of the snapshot exactly once (read
// back with franz-go and compared with the broker's).
func TestKillAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ktape and runs it many times")
	}
	bin := buildKtape(t)
	c := kfaketest.Start(t, kfaketest.Topics(4, "orders"), kfaketest.Topics(1, "events"))
	value := bytes.Repeat([]byte("0123456789abcdef"), 256) // 4 KiB
	for i := 0; i < 128; i++ {
		var rs []*kgo.Record
		for j := 0; j < 16; j++ {
			rs = append(rs, &kgo.Record{Key: []byte(fmt.Sprint("k", i, "-", j)), Value: value})
		}
		opts := kfaketest.ProduceOptions{}
		if i%2 == 1 {
			opts.Compression = kgo.Lz4Compression()
		}
		if i%8 == 7 {
			opts.Txn = kfaketest.Abort
		}
		c.ProduceWith(t, opts, "orders", int32(i%4), rs...)
		c.Produce(t, "events", 0, &kgo.Record{Value: []byte(fmt.Sprint("event ", i))})
	}
	dir := t.TempDir()
	args := []string{"backup", "--brokers", c.Addrs()[0], "--repo", dir, "--checkpoint-interval", "2ms", "--memory", fmt.Sprint(8 << 20), "--json"}
	kills, first := 0, ""
	var done struct {
		Backup  string `json:"backup"`
		Resumed bool   `json:"resumed"`
	}
	for delay := 20 * time.Millisecond; ; delay += 10 * time.Millisecond {
		if delay > 5*time.Second {
			t.Fatal("the backup did not finish")
		}
		if out, killed := runOrKill(t, bin, args, delay); !killed {
			if err := json.Unmarshal(out, &done); err != nil {
				t.Fatalf("backup --json: %v: %q", err, out)
			}
		} else {
			kills++
			run, finished := runs(t, dir)
			if first == "" && run != "" {
				first = run
				if code, out, _ := runKtape(t, "ls", "--repo", dir, "--json"); code != 0 || !strings.Contains(out, `"message_type":"unfinished_run","id":"`+run) {
					t.Fatalf("ls: %d %s: the unfinished run is not listed", code, out)
				}
			}
			if finished != "" { // killed after it wrote the manifest
				done.Backup, done.Resumed = finished, kills > 1
				break
			}
			continue
		}
		break
	}
	t.Logf("%d kills, then backup %s (resumed %v)", kills, done.Backup, done.Resumed)
	if kills < 3 || first == "" || done.Backup != first || !done.Resumed {
		t.Fatalf("%d kills, first run %q, finished %s (resumed %v): want the first run resumed to the end", kills, first, done.Backup, done.Resumed)
	}
	if code, out, errOut := runKtape(t, "verify", "--repo", dir, "--deep", done.Backup); code != 0 {
		t.Fatalf("verify --deep: %d %s %s", code, out, errOut)
	}
	st, m := readManifest(t, dir, done.Backup)
	for _, topic := range m.Topics {
		for _, p := range topic.Partitions {
			if p.From != 0 || p.To != p.HighWatermark || p.To == 0 {
				t.Fatalf("%s/%d: [%d, %d), high watermark %d at start", topic.Name, p.Partition, p.From, p.To, p.HighWatermark)
			}
		}
	}
	repotest.CheckAgainstBroker(t, c, st, m)
}

// runs returns the id of the repository's unfinished run and of its
// complete backup, where there are.
func runs(t *testing.T, dir string) (unfinished, finished string) {
	ctx := context.Background()
	st, err := storage.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := repo.Open(ctx, st, true)
	if err != nil {
		return "", "" // killed before it initialised the repository
	}
	runs, err := r.Unfinished(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) > 0 {
		unfinished = runs[len(runs)-1].ID
	}
	ids, err := r.Backups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) > 0 {
		finished = ids[len(ids)-1]
	}
	return unfinished, finished
}

// freePort returns a loopback address nothing listens on (yet).
func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// A continuous backup as a process: it serves its metrics while it
// follows the topic, logs progress, and on SIGINT writes its manifest and
// exits 0 with everything produced before.
func TestContinuousBackupProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ktape")
	}
	bin := buildKtape(t)
	c := kfaketest.Start(t, kfaketest.Topics(2, "orders"))
	c.Produce(t, "orders", 0, &kgo.Record{Value: []byte("before")})
	dir, addr := t.TempDir(), freePort(t)
	cmd := exec.Command(bin, "backup", "--brokers", c.Addrs()[0], "--repo", dir, "--mode", "continuous",
		"--checkpoint-interval", "50ms", "--metrics-addr", addr, "--progress-interval", "20ms", "--json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	for i := 0; i < 20; i++ {
		c.Produce(t, "orders", int32(i%2), &kgo.Record{Value: []byte(fmt.Sprint("while ", i))})
	}
	// The metrics count all 21 records once the backup caught up.
	var metrics string
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(metrics, `ktape_backup_records_total{topic="orders"} 21`); {
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed 21 records:\n%s\nstderr:\n%s", metrics, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
		if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			metrics = string(b)
		}
	}
	for _, want := range []string{`ktape_backup_lag_offsets{partition="1",topic="orders"} 0`, "ktape_backup_checkpoints_total", "ktape_backup_fetch_wait_seconds_bucket", "process_resident_memory_bytes"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGINT: %v\n%s", err, stderr.String())
	}
	var done struct {
		Backup  string `json:"backup"`
		Records int64  `json:"records"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &done); err != nil || done.Records != 21 {
		t.Fatalf("summary %q: %v", stdout.String(), err)
	}
	if !strings.Contains(stderr.String(), `"msg":"backup: progress"`) {
		t.Errorf("no progress logged:\n%s", stderr.String())
	}
	if code, out, errOut := runKtape(t, "verify", "--repo", dir, "--deep", done.Backup); code != 0 {
		t.Fatalf("verify --deep: %d %s %s", code, out, errOut)
	}
	st, m := readManifest(t, dir, done.Backup)
	if m.Mode != "continuous" || m.Topics[0].Partitions[0].To != 11 || m.Topics[0].Partitions[1].To != 10 {
		t.Fatalf("manifest: mode %s, %+v", m.Mode, m.Topics[0].Partitions)
	}
	repotest.CheckAgainstBroker(t, c, st, m)
}

// readManifest opens the repository in dir and reads backup id's manifest.
func readManifest(t *testing.T, dir, id string) (*storage.Store, *repo.Manifest) {
	t.Helper()
	ctx := context.Background()
	st, err := storage.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r, err := repo.Open(ctx, st, false)
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.Manifest(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return st, m
}

// A restore killed with SIGKILL again and again, each run slowed by
// --rate-limit so the kills land mid-way, then allowed to finish: the
// target holds every record of the source once, in order (read back with
// franz-go, read_committed), and the group offsets are translated. The
// same with the records spread by key over another partition count.
func TestRestoreKillAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ktape and runs it many times")
	}
	bin := buildKtape(t)
	src := kfaketest.Start(t, kfaketest.Topics(3, "orders"))
	value := bytes.Repeat([]byte("0123456789abcdef"), 256) // 4 KiB
	for i := 0; i < 60; i++ {
		var rs []*kgo.Record
		for j := 0; j < 16; j++ {
			rs = append(rs, &kgo.Record{Key: []byte(fmt.Sprint("k", i, "-", j)), Value: value})
		}
		opts := kfaketest.ProduceOptions{}
		if i%2 == 1 {
			opts.Compression = kgo.ZstdCompression()
		}
		if i%10 == 9 {
			opts.Txn = kfaketest.Abort
		}
		src.ProduceWith(t, opts, "orders", int32(i%3), rs...)
	}
	dir := t.TempDir()
	if code, _, errOut := runKtape(t, "backup", "--brokers", src.Addrs()[0], "--repo", dir); code != 0 {
		t.Fatalf("backup: %d %s", code, errOut)
	}
	// As stored, and spread by key over 5 partitions (re-encoded): each
	// target partition gets source 0's records for it, then 1's, then 2's.
	part := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	for _, tc := range []struct {
		name  string
		extra []string
		n     int32
		where func(*kgo.Record) int32
	}{
		{"orders", nil, 3, func(r *kgo.Record) int32 { return r.Partition }},
		{"spread", []string{"--remap", "orders=spread", "--partition-map", "orders=hash:5"}, 5, func(r *kgo.Record) int32 { return int32(part.Partition(r, 5)) }},
	} {
		dst := kfaketest.Start(t)
		args := append([]string{"restore", "--brokers", dst.Addrs()[0], "--repo", dir, "--rate-limit", "1MiB", "--memory", "8MiB", "--json"}, tc.extra...)
		kills := 0
		var done struct {
			Resumed         bool  `json:"resumed"`
			AlreadyRestored int64 `json:"batches_already_restored"`
			Batches         int64 `json:"batches"`
		}
		for delay := 300 * time.Millisecond; ; delay += 100 * time.Millisecond {
			if delay > 10*time.Second {
				t.Fatalf("%s: the restore did not finish", tc.name)
			}
			if out, killed := runOrKill(t, bin, args, delay); !killed {
				if err := json.Unmarshal(out, &done); err != nil {
					t.Fatalf("restore --json: %v: %q", err, out)
				}
			} else {
				kills++
				continue
			}
			break
		}
		t.Logf("%s: %d kills, then %+v", tc.name, kills, done)
		if kills < 3 || !done.Resumed || done.AlreadyRestored == 0 {
			t.Fatalf("%s: %d kills, then %+v: want a resumed restore after several kills", tc.name, kills, done)
		}
		want, got := map[int32][]string{}, map[int32][]string{}
		source := src.ConsumeAll(t, "orders", kgo.ReadCommitted())
		for p := int32(0); p < 3; p++ {
			for _, r := range source {
				if r.Partition == p {
					want[tc.where(r)] = append(want[tc.where(r)], fmt.Sprintf("%s %d", r.Key, r.Timestamp.UnixMilli()))
				}
			}
		}
		for _, r := range dst.ConsumeAll(t, tc.name, kgo.ReadUncommitted()) {
			got[r.Partition] = append(got[r.Partition], fmt.Sprintf("%s %d", r.Key, r.Timestamp.UnixMilli()))
		}
		for p := range tc.n {
			if len(want[p]) == 0 || fmt.Sprint(got[p]) != fmt.Sprint(want[p]) {
				t.Fatalf("%s: partition %d: the target holds %d records, the source %d, or they differ", tc.name, p, len(got[p]), len(want[p]))
			}
		}
	}
}
