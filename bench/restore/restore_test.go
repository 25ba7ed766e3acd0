package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/ktape/ktape/bench/internal/harness"
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
// ktape, prepares a repository and a records file, starts a broker process
// and a client process per run, checks what the broker received, and
// prints one line per run; then -table reads them back. The second target
// reuses the inputs the first prepared, and a ktape built once. ktape-age
// restores from the encrypted repository prepared beside the plain one,
// with its key.
func TestHarnessEndToEnd(t *testing.T) {
	impls := []string{"ktape", "ktape-age", "kgo", "naive"}
	if _, err := exec.LookPath("kcat"); err == nil {
		impls = append(impls, "kcat")
	} else {
		t.Log("kcat is not installed: not run (scripts/test.sh installs it)")
	}
	inputs := t.TempDir()
	ktape, err := harness.Ktape("", t.TempDir(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		target, codec, ktapeBin string
	}{
		{"sink", "lz4", ""}, // the harness builds ktape
		{"kfake", "lz4", ktape},
	} {
		var stdout, stderr bytes.Buffer
		args := []string{"-ktape-bin", tc.ktapeBin, "-impl", strings.Join(impls, ","), "-target", tc.target, "-size", "2MiB", "-partitions", "2",
			"-codec", tc.codec, "-batch-bytes", "16KiB", "-pool-bytes", "1MiB", "-reps", "1", "-settle", "0s", "-timeout", "60s",
			"-dir", t.TempDir(), "-inputs", inputs}
		code := run(args, os.Args[0], []string{childEnv + "=1"}, &stdout, &stderr)
		if code != 0 || testing.Verbose() {
			t.Logf("harness stderr:\n%s", stderr.String())
		}
		if code != 0 {
			t.Fatalf("%s: harness exited %d; stdout:\n%s", tc.target, code, stdout.String())
		}
		if prepared := strings.Contains(stderr.String(), "preparing"); prepared != (tc.target == "sink") {
			t.Errorf("%s: inputs prepared: %v", tc.target, prepared)
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
			case r.TopicBytes < 2<<20 || r.TargetRecords != r.TopicRecords || r.TopicRecords == 0:
				t.Errorf("%s/%s: the broker holds %d of %d records of a %d-byte topic", tc.target, r.Impl, r.TargetRecords, r.TopicRecords, r.TopicBytes)
			case r.MBPerSec <= 0 || r.Seconds <= 0 || r.CPUSeconds <= 0 || r.CPUPerGiB <= 0 || r.MaxRSSMB <= 0 || r.InputBytes <= 0:
				t.Errorf("%s/%s: implausible figures: %s", tc.target, r.Impl, sc.Bytes())
			case tc.target == "sink" && (r.TargetBatches == 0 || r.TargetBytes == 0):
				t.Errorf("%s/%s: the sink counted no batches or bytes: %s", tc.target, r.Impl, sc.Bytes())
			case r.Impl != "kcat" && r.RecordsSent != r.TopicRecords:
				t.Errorf("%s/%s: reported %d records sent of %d", tc.target, r.Impl, r.RecordsSent, r.TopicRecords)
			case r.Partitions != 2 || r.Codec != tc.codec || r.Target != tc.target:
				t.Errorf("%s/%s: configuration not echoed: %s", tc.target, r.Impl, sc.Bytes())
			}
		}
		slices.Sort(seen)
		if want := slices.Sorted(slices.Values(impls)); !slices.Equal(seen, want) {
			t.Errorf("%s: lines for %v, want %v", tc.target, seen, want)
		}
		var table bytes.Buffer
		if err := writeTable(bytes.NewReader(stdout.Bytes()), &table, true); err != nil {
			t.Fatalf("table: %v", err)
		}
		if !strings.Contains(table.String(), "| "+tc.target+", 2 MiB, 2, "+tc.codec+" |") {
			t.Errorf("summary table has no row for the run:\n%s", table.String())
		}
	}
}

// TestRecordsFileDelimiters checks the kcat spelling of the delimiters and
// that the kgo replayer's split finds records as kcat would.
func TestRecordsFileDelimiters(t *testing.T) {
	if got := kcatDelim([]byte{0xf1, 0x0a}); got != `\xf1\x0a` {
		t.Errorf("kcatDelim: %q", got)
	}
	data := slices.Concat([]byte("k1"), keyDelim, []byte("v 1"), recordDelim, []byte("k2"), keyDelim, []byte("v2"), recordDelim)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Split(splitAt(recordDelim))
	var got []string
	for sc.Scan() {
		k, v, _ := bytes.Cut(sc.Bytes(), keyDelim)
		got = append(got, string(k)+"="+string(v))
	}
	if sc.Err() != nil || !slices.Equal(got, []string{"k1=v 1", "k2=v2"}) {
		t.Errorf("split: %q, %v", got, sc.Err())
	}
	sc = bufio.NewScanner(bytes.NewReader(append(data, 'x')))
	sc.Split(splitAt(recordDelim))
	for sc.Scan() {
	}
	if sc.Err() == nil {
		t.Errorf("trailing bytes after the last record were not an error")
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-impl", "nosuch"},
		{"-target", "kafka"},
		{"-size", "lots"},
		{"-partitions", "0"},
		{"-codec", "brotli"},
		{"-reps", "0"},
		{"-settle", "-1s"},
		{"-memory", "1MiB"},
		{"-child", "-impl", "ktape", "-brokers", "x:1", "-in", "f"},
		{"-child", "-impl", "kgo", "-codec", "none", "-brokers", "x:1"},
		{"stray"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, os.Args[0], nil, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %q)", args, code, stderr.String())
		}
		if !strings.Contains(stderr.String(), "restore:") {
			t.Errorf("%q: no error message: %q", args, stderr.String())
		}
	}
}
