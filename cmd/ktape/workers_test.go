package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/internal/repotest"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// workersCluster is workersData's cluster, whose fetches return one
// batch per partition and take 15 ms: a backup takes seconds, time for
// workers to come and go part-way.
func workersCluster(t *testing.T) *kfaketest.Cluster {
	t.Helper()
	c := workersData(t)
	k := c.Kfake()
	k.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		k.KeepControl()
		f := req.(*kmsg.FetchRequest)
		f.MaxBytes = 1
		for i := range f.Topics {
			for j := range f.Topics[i].Partitions {
				f.Topics[i].Partitions[j].PartitionMaxBytes = 1
			}
		}
		time.Sleep(15 * time.Millisecond)
		return nil, nil, false
	})
	return c
}

// workersData is a cluster of 2 topics of 6 partitions, 20 batches of 5
// records each.
func workersData(t *testing.T) *kfaketest.Cluster {
	t.Helper()
	c := kfaketest.Start(t, kfaketest.Brokers(2), kfaketest.Topics(6, "orders", "audit"))
	for _, topic := range []string{"orders", "audit"} {
		for p := range int32(6) {
			for b := range 20 {
				var rs []*kgo.Record
				for i := range 5 {
					rs = append(rs, &kgo.Record{Key: fmt.Appendf(nil, "%s-%d-%d-%d", topic, p, b, i), Value: bytes.Repeat([]byte{byte(b)}, 100+i)})
				}
				c.Produce(t, topic, p, rs...)
			}
		}
	}
	return c
}

// worker is a ktape process started with --workers-group.
type worker struct {
	cmd         *exec.Cmd
	out, errOut bytes.Buffer
	done        chan error
}

func startWorker(t *testing.T, bin string, args ...string) *worker {
	t.Helper()
	w := &worker{cmd: exec.Command(bin, args...), done: make(chan error, 1)}
	w.cmd.Stdout, w.cmd.Stderr = &w.out, &w.errOut
	w.cmd.Env = cleanEnv()
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { w.done <- w.cmd.Wait() }()
	t.Cleanup(func() {
		w.cmd.Process.Kill()
		<-w.done
		w.done <- nil
	})
	return w
}

// cleanEnv is the environment without KTAPE_ settings.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KTAPE_") {
			env = append(env, kv)
		}
	}
	return env
}

// result waits for the worker and returns its backup_done line.
func (w *worker) result(t *testing.T) (id string, batches int64) {
	t.Helper()
	select {
	case err := <-w.done:
		w.done <- err
		if err != nil {
			t.Fatalf("worker: %v\n%s", err, w.errOut.String())
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("worker still running after 90 s:\n%s", w.errOut.String())
	}
	var done struct {
		Backup  string `json:"backup"`
		Batches int64  `json:"batches"`
		Group   string `json:"workers_group"`
	}
	if err := json.Unmarshal(w.out.Bytes(), &done); err != nil || done.Group == "" {
		t.Fatalf("worker output %q: %v", w.out.String(), err)
	}
	return done.Backup, done.Batches
}

// waitWorkerCheckpoints waits until the repository at dir holds n worker
// checkpoints.
func waitWorkerCheckpoints(t *testing.T, dir string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		files, _ := filepath.Glob(filepath.Join(dir, "checkpoints", "*", "workers", "*", "*.json"))
		if len(files) >= n {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no %d worker checkpoints in %s after 30 s", n, dir)
}

// singleBackup is a one-process backup of c, to compare with.
func singleBackup(t *testing.T, bin string, c *kfaketest.Cluster) (*storage.Store, *repo.Manifest, int64) {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(bin, "backup", "--brokers", c.Addrs()[0], "--repo", dir, "--json", "--skip-groups")
	cmd.Env = cleanEnv()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("single backup: %v", err)
	}
	var done struct {
		Backup  string `json:"backup"`
		Batches int64  `json:"batches"`
	}
	if err := json.Unmarshal(out, &done); err != nil {
		t.Fatal(err)
	}
	st, m := readManifest(t, dir, done.Backup)
	return st, m, done.Batches
}

// sameBatches fails unless got holds the 12 partitions of want, byte for
// byte (repotest.SameBatches).
func sameBatches(t *testing.T, stWant *storage.Store, want *repo.Manifest, stGot *storage.Store, got *repo.Manifest) {
	t.Helper()
	if n := repotest.SameBatches(t, stWant, want, stGot, got); n != 12 {
		t.Fatalf("compared %d partitions, want 12", n)
	}
}

func workerArgs(c *kfaketest.Cluster, dir, name string) []string {
	return []string{"backup", "--brokers", c.Addrs()[0], "--repo", dir, "--json", "--skip-groups", "--workers-group", "nightly",
		"--worker-name", name, "--checkpoint-interval", "200ms", "--worker-session-timeout", "6s", "--worker-rebalance-timeout", "20s"}
}

// Three worker processes share a backup; one is killed (SIGKILL) part-way.
// The other two take over its partitions from its last checkpoint and
// finish: both print the same backup, which holds every partition of the
// one-process backup, byte for byte, and which franz-go reads as the broker
// serves it.
func TestWorkersKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ktape, runs processes")
	}
	bin := buildKtape(t)
	c := workersCluster(t)
	stOne, one, _ := singleBackup(t, bin, c)
	dir := t.TempDir()
	ws := []*worker{startWorker(t, bin, workerArgs(c, dir, "w0")...), startWorker(t, bin, workerArgs(c, dir, "w1")...), startWorker(t, bin, workerArgs(c, dir, "w2")...)}
	waitWorkerCheckpoints(t, dir, 3)
	if err := ws[1].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	id0, _ := ws[0].result(t)
	id2, _ := ws[2].result(t)
	t.Logf("the survivors finished %.1f s after the kill", time.Since(killedAt).Seconds())
	if id0 != id2 {
		t.Fatalf("the workers finished different backups: %s and %s", id0, id2)
	}
	if !strings.Contains(ws[0].errOut.String()+ws[2].errOut.String(), `"generation"`) {
		t.Fatalf("no assignment logged:\n%s", ws[0].errOut.String())
	}
	st, m := readManifest(t, dir, id0)
	sameBatches(t, stOne, one, st, m)
	repotest.CheckAgainstBroker(t, c, st, m)
}

// Two worker processes share a backup and a third joins part-way:
// partitions move to it (it backs up some), and the result is the
// one-process backup, byte for byte, with every batch fetched exactly once
// across the three.
func TestWorkersJoin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ktape, runs processes")
	}
	bin := buildKtape(t)
	c := workersCluster(t)
	stOne, one, oneBatches := singleBackup(t, bin, c)
	dir := t.TempDir()
	ws := []*worker{startWorker(t, bin, workerArgs(c, dir, "w0")...), startWorker(t, bin, workerArgs(c, dir, "w1")...)}
	waitWorkerCheckpoints(t, dir, 2)
	// ls shows the run with its workers' progress.
	if code, out, errOut := runKtape(t, "ls", "--repo", dir); code != 0 || !strings.Contains(out, "unfinished, shared by workers group nightly") {
		t.Errorf("ls during the run: %d %q %q", code, out, errOut)
	}
	ws = append(ws, startWorker(t, bin, workerArgs(c, dir, "w2")...))
	var ids []string
	var batches int64
	for i, w := range ws {
		id, n := w.result(t)
		ids = append(ids, id)
		batches += n
		t.Logf("worker %d: %d batches", i, n)
		if i == 2 && n == 0 {
			t.Errorf("the worker that joined part-way backed up nothing:\n%s", w.errOut.String())
		}
	}
	if ids[0] != ids[1] || ids[1] != ids[2] {
		t.Fatalf("the workers finished different backups: %v", ids)
	}
	if batches != oneBatches {
		t.Errorf("the workers fetched %d batches into the backup, one process %d: some twice, or some missed", batches, oneBatches)
	}
	st, m := readManifest(t, dir, ids[0])
	sameBatches(t, stOne, one, st, m)
	repotest.CheckAgainstBroker(t, c, st, m)
}

// Three `ktape restore --workers-group` processes restore a backup into a
// cluster: it then holds, record by record as franz-go reads them, what a
// one-process restore writes into another, each of the three sent some of
// it, and every batch was sent once across them.
func TestWorkersRestore(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ktape, runs processes")
	}
	bin := buildKtape(t)
	src := workersData(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "backup", "--brokers", src.Addrs()[0], "--repo", dir, "--json", "--skip-groups")
	cmd.Env = cleanEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	one, many := kfaketest.Start(t), kfaketest.Start(t)
	cmd = exec.Command(bin, "restore", "--brokers", one.Addrs()[0], "--repo", dir, "--json")
	cmd.Env = cleanEnv()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("one-process restore: %v", err)
	}
	var single struct {
		Batches int64 `json:"batches"`
	}
	if err := json.Unmarshal(out, &single); err != nil || single.Batches == 0 {
		t.Fatalf("restore --json %q: %v", out, err)
	}
	// The workers' target answers each produce request after 30 ms, so
	// that the restore lasts long enough for all three to share it.
	k := many.Kfake()
	k.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		k.KeepControl()
		time.Sleep(30 * time.Millisecond)
		return nil, nil, false
	})
	var ws []*worker
	for range 3 {
		ws = append(ws, startWorker(t, bin, "restore", "--brokers", many.Addrs()[0], "--repo", dir, "--json", "--workers-group", "restorers",
			"--worker-session-timeout", "6s", "--worker-rebalance-timeout", "20s"))
	}
	var batches int64
	var ids []string
	for i, w := range ws {
		select {
		case err := <-w.done:
			w.done <- err
			if err != nil {
				t.Fatalf("restore worker %d: %v\n%s", i, err, w.errOut.String())
			}
		case <-time.After(90 * time.Second):
			t.Fatalf("restore worker %d still running after 90 s:\n%s", i, w.errOut.String())
		}
		var done struct {
			Restore string `json:"restore"`
			Batches int64  `json:"batches"`
			Group   string `json:"workers_group"`
		}
		if err := json.Unmarshal(w.out.Bytes(), &done); err != nil || done.Group != "restorers" {
			t.Fatalf("restore worker %d printed %q: %v", i, w.out.String(), err)
		}
		batches += done.Batches
		ids = append(ids, done.Restore)
		t.Logf("restore worker %d: %d batches", i, done.Batches)
		if done.Batches == 0 {
			t.Errorf("restore worker %d restored nothing: the restore was not shared", i)
		}
	}
	if ids[0] != ids[1] || ids[1] != ids[2] {
		t.Fatalf("the workers ran different restores: %v", ids)
	}
	if batches != single.Batches {
		t.Errorf("the workers sent %d batches, one process %d", batches, single.Batches)
	}
	for _, topic := range []string{"orders", "audit"} {
		want, got := one.ConsumeAll(t, topic), many.ConsumeAll(t, topic)
		if len(want) != 6*20*5 || len(got) != len(want) {
			t.Fatalf("%s: %d records restored by the workers, %d by one process", topic, len(got), len(want))
		}
		for i := range want {
			w, g := want[i], got[i]
			if g.Partition != w.Partition || g.Offset != w.Offset || !bytes.Equal(g.Key, w.Key) || !bytes.Equal(g.Value, w.Value) || !g.Timestamp.Equal(w.Timestamp) {
				t.Fatalf("%s record %d: %d/%d %q, one process restored %d/%d %q", topic, i, g.Partition, g.Offset, g.Key, w.Partition, w.Offset, w.Key)
			}
		}
	}
}
