package repo

import (
	"strings"
	"testing"
	"time"
)

func sampleManifest(t testing.TB) *Manifest {
	t.Helper()
	batches := fixtureBatches(t)[0]
	_, seg := writeSegment(t, FramingZstd, 0, batches)
	id := "0123456789abcdef0123456789abcdef"
	key := SegmentKey("orders", id, 0, seg)
	start := time.Date(2026, 11, 22, 1, 2, 3, 0, time.UTC)
	return &Manifest{
		Format: manifestFormat, Version: manifestVersion, ID: NewBackupID(start),
		Started: start, Finished: start.Add(time.Minute), KtapeVersion: "dev",
		Source: Source{ClusterID: "c1", Bootstrap: []string{"k:9092"}},
		Mode:   "snapshot", Isolation: "read_uncommitted",
		Topics: []Topic{{Name: "orders", ID: id, PartitionsCount: 2, ReplicationFactor: 3,
			Configs: map[string]string{"cleanup.policy": "compact"},
			Partitions: []Partition{{Partition: 0, From: batches[0].BaseOffset(), To: batches[len(batches)-1].LastOffset() + 1,
				Segments: []SegmentRef{seg.Ref(key)}}, {Partition: 1}}}},
		Groups: []Group{{Group: "billing", Offsets: []GroupOffset{{Topic: "orders", Partition: 0, Offset: 3}}}},
	}
}

func TestManifestRoundTrip(t *testing.T) {
	m := sampleManifest(t)
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := got.Marshal()
	if string(again) != string(b) {
		t.Fatalf("changed in a round trip:\n%s\n%s", b, again)
	}
	if !strings.HasPrefix(m.ID, "20261122T010203Z-") || IndexKey(m.Topics[0].Partitions[0].Segments[0].Key)[len("segments/"):] == "" {
		t.Fatalf("id %s", m.ID)
	}
}

// Each rule a reader relies on is enforced, with a message naming it.
func TestManifestRefuses(t *testing.T) {
	cases := map[string]func(m *Manifest){
		"version":       func(m *Manifest) { m.Version = 2 },
		"id is not":     func(m *Manifest) { m.ID = "x" },
		"mode":          func(m *Manifest) { m.Mode = "full" },
		"partition out": func(m *Manifest) { m.Topics[0].Partitions[1].Partition = 2 },
		"range":         func(m *Manifest) { m.Topics[0].Partitions[0].To = -1 },
		"is not this partition's": func(m *Manifest) {
			m.Topics[0].Partitions[0].Segments[0].Key = strings.Replace(m.Topics[0].Partitions[0].Segments[0].Key, "/0/", "/1/", 1)
		},
		"does not match its base offset": func(m *Manifest) { m.Topics[0].Partitions[0].Segments[0].SHA256 = strings.Repeat("0", 64) },
		"gap":                            func(m *Manifest) { m.Topics[0].Partitions[0].Gaps = []Gap{{From: 0, To: 1 << 40, Reason: "retention"}} },
		"not in the backup":              func(m *Manifest) { m.Groups[0].Offsets[0].Topic = "other" },
	}
	for want, mutate := range cases {
		m := sampleManifest(t)
		mutate(m)
		if _, err := m.Marshal(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
	good, _ := sampleManifest(t).Marshal()
	newer := strings.Replace(string(good), `"version": 1`, `"version": 2`, 1)
	if _, err := ParseManifest([]byte(newer)); err == nil || !strings.Contains(err.Error(), "format version 2, written by a newer ktape") {
		t.Errorf("a newer manifest: %v", err)
	}
	for _, bad := range []string{
		strings.Replace(string(good), `"version": 1`, `"version": 9`, 1),
		strings.Replace(string(good), `"mode"`, `"unknown_field": 1, "mode"`, 1),
		string(good) + "{}",
		string(good[:len(good)/2]),
	} {
		if _, err := ParseManifest([]byte(bad)); err == nil {
			t.Errorf("accepted: %.80s…", bad)
		}
	}
}

// encoding/json matches keys regardless of case and keeps the last of
// duplicates: a bit flipped in a key's case, or a field given twice, must
// still be refused, naming the field (found by the corruption matrix in
// cmd/ktape, which flipped "stored_bytes" into "stored_byteS").
func TestManifestRefusesNonCanonicalKeys(t *testing.T) {
	good, _ := sampleManifest(t).Marshal()
	for bad, want := range map[string]string{
		strings.Replace(string(good), `"stored_bytes"`, `"stored_byteS"`, 1):                      `"topics[0].partitions[0].segments[0].stored_byteS"`,
		strings.Replace(string(good), `"high_watermark"`, `"High_watermark"`, 1):                  `"topics[0].partitions[0].High_watermark"`,
		strings.Replace(string(good), `"mode": "snapshot"`, `"mode": "snapshot", "Mode": "x"`, 1): `"Mode"`,
		strings.Replace(string(good), `"from": `, `"to": 1, "from": `, 1):                         `"topics[0].partitions[0].to" is given twice`,
		strings.Replace(string(good), `"cluster_id"`, `"cluster_iD"`, 1):                          `"source.cluster_iD"`,
	} {
		if _, err := ParseManifest([]byte(bad)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want an error naming %s, got %v", want, err)
		}
	}
	// Topic configs are the topic's own names: free, whatever their case.
	m := sampleManifest(t)
	m.Topics[0].Configs["Some.Config"] = "1"
	b, _ := m.Marshal()
	if _, err := ParseManifest(b); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseManifest(f *testing.F) {
	good, _ := sampleManifest(f).Marshal()
	f.Add(good)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("accepted manifest does not marshal: %v", err)
		}
		if _, err := ParseManifest(out); err != nil {
			t.Fatalf("re-marshalled manifest refused: %v", err)
		}
	})
}
