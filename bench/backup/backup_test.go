package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestMain lets the harness under test re-run this test binary as its
// broker and child processes: with childEnv set, the binary is the
// command, not the tests.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(run(os.Args[1:], "", nil, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestHarnessEndToEnd runs the real harness on a tiny topic: it builds
// ktape, starts a broker process and a client process per run, checks
// what each client saw, and prints one line per run; then -table reads
// them back. ktape-age runs too: its key made with ktape keygen, its
// encrypted manifest read with the key.
func TestHarnessEndToEnd(t *testing.T) {
	impls := []string{"ktape", "ktape-age", "raw", "kgo"}
	if _, err := exec.LookPath("kcat"); err == nil {
		impls = append(impls, "kcat")
	} else {
		t.Log("kcat is not installed: not run (scripts/test.sh installs it)")
	}
	for _, tc := range []struct {
		target, codec string
		impls         []string
	}{
		{"source", "lz4", impls},
		{"kfake", "none", []string{"ktape", "ktape-age", "raw"}},
	} {
		var stdout, stderr bytes.Buffer
		args := []string{"-impl", strings.Join(tc.impls, ","), "-target", tc.target, "-size", "4MiB", "-partitions", "2",
			"-codec", tc.codec, "-batch-bytes", "16KiB", "-pool-bytes", "1MiB", "-reps", "1", "-settle", "0s", "-timeout", "60s", "-dir", t.TempDir()}
		code := run(args, os.Args[0], []string{childEnv + "=1"}, &stdout, &stderr)
		if code != 0 || testing.Verbose() {
			t.Logf("harness stderr:\n%s", stderr.String())
		}
		if code != 0 {
			t.Fatalf("%s: harness exited %d; stdout:\n%s", tc.target, code, stdout.String())
		}
		var seen []string
		sc := bufio.NewScanner(bytes.NewReader(stdout.Bytes()))
		for sc.Scan() {
			var r result
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("line %q: %v", sc.Bytes(), err)
			}
			seen = append(seen, r.Impl)
			switch {
			case r.Error != "":
				t.Errorf("%s/%s: %s", tc.target, r.Impl, r.Error)
			case r.TopicBytes < 4<<20 || r.RecordsSeen != r.TopicRecords || r.TopicRecords == 0:
				t.Errorf("%s/%s: saw %d of %d records of a %d-byte topic", tc.target, r.Impl, r.RecordsSeen, r.TopicRecords, r.TopicBytes)
			case r.MBPerSec <= 0 || r.Seconds <= 0 || r.CPUSeconds <= 0 || r.CPUPerGiB <= 0 || r.MaxRSSMB <= 0:
				t.Errorf("%s/%s: implausible figures: %s", tc.target, r.Impl, sc.Bytes())
			case r.Impl != "kgo" && r.Impl != "raw" && r.OutputBytes < r.TopicBytes/2:
				t.Errorf("%s/%s: wrote %d bytes of a %d-byte topic", tc.target, r.Impl, r.OutputBytes, r.TopicBytes)
			case tc.target == "source" && r.ServerBytes < r.TopicBytes:
				t.Errorf("%s/%s: the source served %d bytes of a %d-byte topic", tc.target, r.Impl, r.ServerBytes, r.TopicBytes)
			case r.Partitions != 2 || r.Codec != tc.codec || r.Target != tc.target:
				t.Errorf("%s/%s: configuration not echoed: %s", tc.target, r.Impl, sc.Bytes())
			}
		}
		// Each round runs the impls in its own shuffled order.
		slices.Sort(seen)
		if want := slices.Sorted(slices.Values(tc.impls)); !slices.Equal(seen, want) {
			t.Errorf("%s: lines for %v, want %v", tc.target, seen, tc.impls)
		}
		var table bytes.Buffer
		if err := writeTable(bytes.NewReader(stdout.Bytes()), &table, true); err != nil {
			t.Fatalf("table: %v", err)
		}
		if !strings.Contains(table.String(), "| "+tc.target+", 4 MiB, 2, "+tc.codec+" |") {
			t.Errorf("summary table has no row for the run:\n%s", table.String())
		}
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-impl", "nosuch"},
		{"-impl", "ktape,ktape-agex"},
		{"-target", "kafka"},
		{"-size", "lots"},
		{"-partitions", "0"},
		{"-codec", "brotli"},
		{"-reps", "0"},
		{"-first-rep", "0"},
		{"-settle", "-1s"},
		{"-child", "-impl", "ktape", "-brokers", "x:1"},
		{"stray"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, os.Args[0], nil, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %q)", args, code, stderr.String())
		}
		if !strings.Contains(stderr.String(), "backup:") {
			t.Errorf("%q: no error message: %q", args, stderr.String())
		}
	}
}
