package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// TestMain lets the harness under test re-run this test binary as its
// broker: with childEnv set, the binary is the command, not the tests.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(run(os.Args[1:], "", nil, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestHarnessEndToEnd runs the real harness on a tiny topic that the
// broker serves slowly (one batch per partition per Fetch, each held 10
// ms), so that a backup lasts a second or two: it builds ktape, and runs 1
// and 3 workers together, 2 workers of which the second joins at 0.5 s,
// and 2 of which one is SIGKILLed at 0.5 s (session timeout 1 s). The
// harness checks every run's repository: one backup, every partition from
// 0 to the source's high watermark, every batch and byte of the topic;
// this test checks the coordination figures it derives, and the table.
func TestHarnessEndToEnd(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := []string{"-workers", "1,3", "-scenarios", "scale,join,kill", "-join-workers", "2", "-kill-workers", "2", "-event-at", "500ms",
		"-size", "1MiB", "-partitions", "8", "-codec", "lz4", "-batch-bytes", "16KiB", "-pool-bytes", "1MiB", "-memory", "64MiB",
		"-session-timeout", "1s", "-rebalance-timeout", "10s", "-checkpoint-interval", "200ms",
		"-fetch-delay", "10ms", "-partition-max-bytes", "1", "-reps", "1", "-settle", "0s", "-timeout", "60s", "-dir", t.TempDir()}
	code := run(args, os.Args[0], []string{childEnv + "=1"}, &stdout, &stderr)
	if code != 0 || testing.Verbose() {
		t.Logf("harness stderr:\n%s", stderr.String())
	}
	if code != 0 {
		t.Fatalf("harness exited %d; stdout:\n%s", code, stdout.String())
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(stdout.Bytes()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Bytes(), err)
		}
		key := r.Scenario + "/" + string(rune('0'+r.Workers))
		seen[key] = true
		if r.Error != "" {
			t.Errorf("%s: %s", key, r.Error)
			continue
		}
		var bytesDone int64
		killed := 0
		for _, w := range r.PerWorker {
			bytesDone += w.Bytes
			if w.Killed {
				killed++
			}
		}
		switch {
		case r.Backup == "" || r.TopicRecords == 0 || len(r.PerWorker) != r.Workers:
			t.Errorf("%s: no backup, or not one line per worker: %s", key, sc.Bytes())
		case r.Scenario != "kill" && bytesDone < r.TopicBytes:
			t.Errorf("%s: the workers backed up %d bytes of a %d-byte topic", key, bytesDone, r.TopicBytes)
		case r.ServerBytes < r.TopicBytes:
			t.Errorf("%s: the source served %d bytes of a %d-byte topic", key, r.ServerBytes, r.TopicBytes)
		case r.Seconds < 0.5 || r.MBPerSec <= 0 || r.CPUSeconds <= 0 || r.FirstAssign <= 0 || r.FirstAssign > r.Seconds:
			t.Errorf("%s: implausible figures: %s", key, sc.Bytes())
		case r.Scenario == "scale" && r.Stable < r.FirstAssign:
			t.Errorf("%s: all assigned at %.3f s, before the first assignment at %.3f s", key, r.Stable, r.FirstAssign)
		case r.Scenario == "kill" && killed != 1:
			t.Errorf("%s: %d workers killed, want 1", key, killed)
		case r.Scenario == "kill" && r.Rebalance < 0.85:
			// The survivor is reassigned only when the coordinator
			// gives up on the dead one: a session timeout after its
			// last heartbeat, which was at most a heartbeat interval
			// (session/10) before the kill.
			t.Errorf("%s: reassigned %.3f s after the kill, sooner than the 1 s session timeout allows", key, r.Rebalance)
		case r.Scenario == "join" && (r.Rebalance <= 0 || r.Generations < 2 || r.PerWorker[1].Started < 0.5):
			t.Errorf("%s: the join at %.3f s took %.3f s over %d generations: %s", key, r.EventAt, r.Rebalance, r.Generations, sc.Bytes())
		}
	}
	for _, want := range []string{"scale/1", "scale/3", "join/2", "kill/2"} {
		if !seen[want] {
			t.Errorf("no line for %s", want)
		}
	}
	var table bytes.Buffer
	if err := writeTable(bytes.NewReader(stdout.Bytes()), &table, false); err != nil {
		t.Fatalf("table: %v", err)
	}
	for _, row := range []string{"| scale | 1 |", "| scale | 3 |", "| join | 2 |", "| kill | 2 |"} {
		if !strings.Contains(table.String(), row) {
			t.Errorf("table has no row %q:\n%s", row, table.String())
		}
	}
	var sum bytes.Buffer
	if err := writeTable(bytes.NewReader(stdout.Bytes()), &sum, true); err != nil {
		t.Fatalf("summary: %v", err)
	}
	var s struct {
		Rows []summaryRow `json:"rows"`
	}
	if err := json.Unmarshal(sum.Bytes(), &s); err != nil || len(s.Rows) != 4 {
		t.Errorf("summary of %d rows (%v):\n%s", len(s.Rows), err, sum.String())
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-workers", "0"},
		{"-scenarios", "dance"},
		{"-join-workers", "1"},
		{"-kill-workers", "1"},
		{"-size", "lots"},
		{"-codec", "brotli"},
		{"-reps", "0"},
		{"-session-timeout", "0s"},
		{"-scenarios", "join"}, // no -event-at, and no scale run to time it from
		{"-workers", "1", "-scenarios", "scale,kill"},
		{"stray"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, os.Args[0], nil, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %q)", args, code, stderr.String())
		}
		if !strings.Contains(stderr.String(), "workers:") {
			t.Errorf("%q: no error message: %q", args, stderr.String())
		}
	}
}
