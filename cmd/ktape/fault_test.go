//go:build linux

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

	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/internal/repotest"
	"github.com/twmb/franz-go/pkg/kgo"
)

// nobody is the uid and gid the denied-write test runs ktape as.
const nobody = 65534

// A repository the backup process may not write to (owned by root, ktape
// run as an unprivileged user — as root, permissions would not stop it):
// ktape backup exits non-zero with an error naming the path and the
// denial, writes nothing, and leaves the repository's backup whole; run
// by a user who may write, the next backup succeeds and verifies clean.
func TestBackupWriteDenied(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("runs ktape as another user: needs root")
	}
	if testing.Short() {
		t.Skip("builds ktape")
	}
	bin := buildKtape(t)
	for p := filepath.Dir(bin); p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		os.Chmod(p, 0o755) // test directories are 0700: let nobody reach the binary
	}
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(2, "t"))
	produce := func(round int) {
		for p := range 2 {
			var rs []*kgo.Record
			for i := range 50 {
				rs = append(rs, &kgo.Record{Key: []byte(fmt.Sprintf("r%d-p%d-%d", round, p, i)), Value: bytes.Repeat([]byte("v"), 100)})
			}
			c.Produce(t, "t", int32(p), rs...)
		}
	}
	produce(0)
	dir := filepath.Join(t.TempDir(), "repo")
	args := []string{"backup", "--brokers", c.Addrs()[0], "--repo", dir, "--json", "--skip-groups"}
	if code, out, errOut := runKtape(t, args...); code != 0 {
		t.Fatalf("first backup, as root: %d %s %s", code, out, errOut)
	}
	for p := dir; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		os.Chmod(p, 0o755) // readable and traversable by nobody, not writable
	}
	produce(1)

	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	cmd.Env = append(os.Environ(), "HOME=/nonexistent")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		t.Fatalf("the backup as uid %d into a directory it may not write succeeded: %s", nobody, stdout.String())
	}
	msg := stderr.String()
	if !strings.Contains(msg, "permission denied") || !strings.Contains(msg, dir) {
		t.Fatalf("exit %v, stderr %q: want the denial and the path", err, msg)
	}
	code, out, errOut := runKtape(t, "ls", "--repo", dir, "--json")
	if code != 0 || strings.Count(out, `"message_type":"backup"`) != 1 || strings.Contains(out, "unfinished_run") {
		t.Fatalf("ls after the denied run: %d %s %s: want the one backup and nothing else", code, out, errOut)
	}

	code, out, errOut = runKtape(t, args...)
	if code != 0 {
		t.Fatalf("backup as root after the denied run: %d %s %s", code, out, errOut)
	}
	var done struct {
		Backup string `json:"backup"`
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		json.Unmarshal([]byte(line), &done)
	}
	if code, out, errOut := runKtape(t, "verify", "--repo", dir, "--deep", done.Backup); code != 0 {
		t.Fatalf("verify --deep %s: %d %s %s", done.Backup, code, out, errOut)
	}
	st, m := readManifest(t, dir, done.Backup)
	repotest.CheckAgainstBroker(t, c, st, m)
	t.Logf("FIGURES fault=%q exit=%v stderr=%q then ok", "EACCES (ktape as uid 65534, repository owned by root)", err, strings.TrimSpace(msg))
}
