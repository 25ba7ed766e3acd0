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
// child: with childEnv set, the binary is the command, not the tests.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(run(os.Args[1:], "", nil, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestHarnessEndToEnd runs the real harness: it builds the sink, starts a
// sink process and a child process per run, and prints one line per impl.
func TestHarnessEndToEnd(t *testing.T) {
	const records = 20_000
	impls := []string{"ktape", "kgo", "sarama", "kafkago"}
	var stdout, stderr bytes.Buffer
	args := []string{"-impl", strings.Join(impls, ","), "-records", "20000", "-value-bytes", "100",
		"-goroutines", "1", "-partitions", "2", "-compression", "none", "-timeout", "60s", "-verify"}
	code := run(args, os.Args[0], []string{childEnv + "=1"}, &stdout, &stderr)
	t.Logf("harness stderr:\n%s", stderr.String())
	if code != 0 {
		t.Fatalf("harness exited %d; stdout:\n%s", code, stdout.String())
	}

	required := []string{"impl", "value_bytes", "goroutines", "partitions", "compression", "acks", "records",
		"seconds", "records_per_sec", "mb_per_sec", "cpu_ns_per_record", "allocs_per_record",
		"bytes_alloc_per_record", "gc_cycles", "append_p50_ns", "append_p99_ns", "sink_records"}
	var seen []string
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		line := sc.Bytes()
		var fields map[string]any
		if err := json.Unmarshal(line, &fields); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		for _, f := range required {
			if _, ok := fields[f]; !ok {
				t.Errorf("line %s has no field %q", line, f)
			}
		}
		var r result
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatal(err)
		}
		seen = append(seen, r.Impl)
		switch {
		case r.Error != "":
			t.Errorf("%s: error %s", r.Impl, r.Error)
		case r.Records != records:
			t.Errorf("%s: %d records, want %d", r.Impl, r.Records, records)
		case r.SinkRecords < r.Records:
			t.Errorf("%s: sink got %d records, fewer than %d", r.Impl, r.SinkRecords, r.Records)
		case r.RecordsPerSec <= 0 || r.MBPerSec <= 0 || r.Seconds <= 0:
			t.Errorf("%s: implausible rate: %s", r.Impl, line)
		case r.CPUNsPerRecord <= 0 || r.AllocsPerRecord <= 0 || r.BytesAllocPerRecord <= 0:
			t.Errorf("%s: implausible costs: %s", r.Impl, line)
		case r.AppendP50Ns <= 0 || r.AppendP99Ns < r.AppendP50Ns:
			t.Errorf("%s: implausible append latencies: %s", r.Impl, line)
		case r.ValueBytes != 100 || r.Goroutines != 1 || r.Partitions != 2 || r.Compression != "none" || r.Acks != "all":
			t.Errorf("%s: configuration not echoed: %s", r.Impl, line)
		}
	}
	if strings.Join(seen, ",") != strings.Join(impls, ",") {
		t.Errorf("lines for %v, want %v", seen, impls)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-impl", "nosuch"},
		{"-value-bytes", "ten"},
		{"-goroutines", "0"},
		{"-compression", "brotli"},
		{"-acks", "0"},
		{"-records", "10", "-duration", "1s"},
		{"-child", "-impl", "kgo,sarama", "-brokers", "x:1"},
		{"stray"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, os.Args[0], nil, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %q)", args, code, stderr.String())
		}
		if !strings.Contains(stderr.String(), "produce:") {
			t.Errorf("%q: no error message: %q", args, stderr.String())
		}
	}
}

func TestDefaultRecords(t *testing.T) {
	for _, tc := range []struct {
		vb   int
		want int64
	}{{0, 2_000_000}, {25, 2_000_000}, {100, 2_000_000}, {1024, 307_200}} {
		if got := defaultRecords(tc.vb); got != tc.want {
			t.Errorf("defaultRecords(%d) = %d, want %d", tc.vb, got, tc.want)
		}
	}
}
