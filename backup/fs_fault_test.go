//go:build linux

package backup

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/repo"
)

// inUserNS marks a test process re-run by smallFS inside a user and mount
// namespace of its own (unshare -rm), where it may mount a tmpfs.
const inUserNS = "KTAPE_TEST_IN_USERNS"

// smallFS mounts a tmpfs of size bytes on a new directory and returns
// it, unmounted when t ends. Without the privilege to mount, it re-runs
// t in a user namespace of its own (unshare -rm), where mounting a tmpfs
// is allowed, and reports false: the caller returns, the child's result
// being t's. Without either, t is skipped with the reason.
func smallFS(t *testing.T, size string) (string, bool) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size)
	if err == nil {
		t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
		return dir, true
	}
	if os.Getenv(inUserNS) != "" {
		t.Skipf("cannot mount a tmpfs even in a user namespace: %v", err)
	}
	if _, lerr := exec.LookPath("unshare"); lerr != nil {
		t.Skipf("cannot mount a tmpfs (%v), and no unshare to try a user namespace", err)
	}
	cmd := exec.Command("unshare", "-rm", os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), inUserNS+"=1")
	out, cerr := cmd.CombinedOutput()
	switch {
	case cerr != nil && strings.Contains(string(out), "unshare:"):
		t.Skipf("cannot mount a tmpfs (%v), nor make a user namespace: %s", err, out)
	case cerr != nil:
		t.Fatalf("in a user namespace: %v\n%s", cerr, out)
	case strings.Contains(string(out), "--- SKIP"):
		t.Skipf("in a user namespace: %s", out)
	}
	t.Logf("ran in a user namespace:\n%s", out)
	return "", false
}

// remount changes the options of the tmpfs at dir (size, ro, rw).
func remount(t *testing.T, dir, opts string) {
	t.Helper()
	flags := uintptr(syscall.MS_REMOUNT)
	if strings.Contains(opts, "ro") && !strings.Contains(opts, "rw") {
		flags |= syscall.MS_RDONLY
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", flags, opts); err != nil {
		t.Fatalf("remount %s %s: %v", dir, opts, err)
	}
}

// strays returns the files under dir that no repository layout names:
// temporary files of writes that did not finish.
func strays(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			name := d.Name()
			if !strings.HasSuffix(name, ".seg") && !strings.HasSuffix(name, ".idx") && !strings.HasSuffix(name, ".json") && name != "ktape-repository" {
				out = append(out, strings.TrimPrefix(path, dir+"/"))
			}
		}
		return nil
	})
	return out
}

// A repository on a file system that runs out of space: the backup
// fails with an error naming the file and saying why, writes no manifest
// for the incomplete backup, leaves the repository's earlier backup whole
// and its own checkpoints (if any fit) naming only stored data; once
// there is room, the next run resumes and ends exact, verify --deep
// clean.
func TestBackupOutOfSpace(t *testing.T) {
	dir, here := smallFS(t, "1m")
	if !here {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(faultParts, "t"))
	for p := range faultParts { // a first backup that fits
		c.Produce(t, "t", int32(p), faultRecords(p, 0)...)
	}
	cl := newClient(t, c)
	st, r := openRepo(t, dir)
	first, _, err := Run(ctx, cl, r, Options{Memory: 16 << 20, SkipGroups: true, Compression: "none"})
	if err != nil {
		t.Fatalf("the first backup, which fits: %v", err)
	}
	for p := range faultParts {
		for round := 1; round < faultRounds; round++ {
			c.Produce(t, "t", int32(p), faultRecords(p, round)...)
		}
	}
	start := time.Now()
	_, _, err = Run(ctx, cl, r, Options{Memory: 16 << 20, SkipGroups: true, Compression: "none"})
	took := time.Since(start)
	if err == nil {
		t.Fatal("a 6 MiB backup succeeded on a 1 MiB file system")
	}
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "no space left on device") || !strings.Contains(err.Error(), "segments/t/") {
		t.Fatalf("error %q: want ENOSPC, said, and the object named", err)
	}
	failure := err
	ids, err := r.Backups(ctx)
	if err != nil || len(ids) != 1 || ids[0] != first.ID {
		t.Fatalf("backups after the failure: %v, %v: want only %s", ids, err, first.ID)
	}
	if errs := r.Verify(ctx, first, true); len(errs) > 0 {
		t.Fatalf("the first backup after the failure: verify --deep: %v", errs)
	}
	checkCheckpoints(t, r)
	left := strays(t, dir)

	remount(t, dir, "size=64m")
	m, stats, err := Run(ctx, cl, r, Options{Memory: 16 << 20, SkipGroups: true, Compression: "none"})
	if err != nil {
		t.Fatalf("the backup once there is room: %v", err)
	}
	checkExact(t, c, st, r, m)
	t.Logf("FIGURES fault=%q took=%v error=%q stray-files=%v then resumed=%v lost=0 duplicated=0", "ENOSPC (1 MiB tmpfs)", took.Round(time.Millisecond), failure, left, stats.Resumed)
}

// A repository whose file system turns read-only (EROFS; the same path
// as a write denied by permissions, which root would bypass): the backup
// fails at once with an error naming the file, writes nothing, and
// leaves the earlier backup whole; writable again, the next backup
// succeeds and verifies clean.
func TestBackupReadOnlyRepository(t *testing.T) {
	dir, here := smallFS(t, "64m")
	if !here {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(faultParts, "t"))
	for p := range faultParts {
		c.Produce(t, "t", int32(p), faultRecords(p, 0)...)
	}
	cl := newClient(t, c)
	st, r := openRepo(t, dir)
	first, _, err := Run(ctx, cl, r, Options{SkipGroups: true})
	if err != nil {
		t.Fatal(err)
	}
	for p := range faultParts {
		for round := 1; round < faultRounds; round++ {
			c.Produce(t, "t", int32(p), faultRecords(p, round)...)
		}
	}
	remount(t, dir, "ro")
	start := time.Now()
	_, _, err = Run(ctx, cl, r, Options{SkipGroups: true})
	took := time.Since(start)
	if err == nil {
		t.Fatal("a backup succeeded into a read-only repository")
	}
	if !errors.Is(err, syscall.EROFS) || !strings.Contains(err.Error(), "read-only file system") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("error %q: want EROFS, said, and the path named", err)
	}
	failure := err
	if ids, err := r.Backups(ctx); err != nil || len(ids) != 1 || ids[0] != first.ID {
		t.Fatalf("backups after the failure: %v, %v: want only %s", ids, err, first.ID)
	}
	if errs := r.Verify(ctx, first, true); len(errs) > 0 {
		t.Fatalf("the first backup after the failure: verify --deep: %v", errs)
	}
	remount(t, dir, "rw")
	m, _, err := Run(ctx, cl, r, Options{SkipGroups: true})
	if err != nil {
		t.Fatalf("the backup once writable: %v", err)
	}
	checkExact(t, c, st, r, m)
	t.Logf("FIGURES fault=%q took=%v error=%q then ok lost=0 duplicated=0", "EROFS (read-only remount)", took.Round(time.Millisecond), failure)
}

// checkCheckpoints verifies (--deep) every checkpoint of every
// unfinished run: a checkpoint names only data that is stored whole.
func checkCheckpoints(t *testing.T, r *repo.Repository) {
	t.Helper()
	ctx := context.Background()
	runs, err := r.Unfinished(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, run := range runs {
		for _, seq := range run.Checkpoints {
			m, err := r.Checkpoint(ctx, run.ID, seq)
			if err != nil {
				t.Fatalf("run %s checkpoint %d: %v", run.ID, seq, err)
			}
			if errs := r.Verify(ctx, m, true); len(errs) > 0 {
				t.Fatalf("run %s checkpoint %d: verify --deep: %v", run.ID, seq, errs)
			}
		}
	}
}
