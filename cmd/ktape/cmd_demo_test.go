package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// demoSummary is the part of demo's JSON object the tests look at.
type demoSummary struct {
	MessageType string `json:"message_type"`
	Passed      bool   `json:"passed"`
	Repository  string `json:"repository"`
	Kept        bool   `json:"kept"`
	Produced    struct {
		Records int64 `json:"records"`
		Deleted int64 `json:"deleted"`
		Markers int64 `json:"markers"`
	} `json:"produced"`
	Backup struct {
		ID string `json:"id"`
	} `json:"backup"`
	Check struct {
		Partitions   int   `json:"partitions"`
		Records      int64 `json:"records"`
		Markers      int64 `json:"markers"`
		GroupOffsets int   `json:"group_offsets"`
	} `json:"check"`
	Restore struct {
		Available       bool  `json:"available"`
		Records         int64 `json:"records"`
		RecordsCompared int64 `json:"records_compared"`
		GroupOffsets    int   `json:"group_offsets"`
	} `json:"restore"`
}

// ktape demo --json prints one "demo" object whose figures add up, and
// removes its temporary repository.
func TestDemoJSON(t *testing.T) {
	code, out, errOut := runKtape(t, "demo", "--json", "--records", "200")
	if code != 0 || errOut != "" {
		t.Fatalf("demo --json: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if n := strings.Count(out, "\n"); n != 1 {
		t.Fatalf("demo --json printed %d lines, want one object:\n%s", n, out)
	}
	var s demoSummary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	switch {
	case s.MessageType != "demo" || !s.Passed || s.Backup.ID == "":
		t.Fatalf("summary %+v", s)
	case s.Check.Partitions == 0 || s.Check.Records != s.Produced.Records-s.Produced.Deleted || s.Check.Markers != s.Produced.Markers || s.Check.GroupOffsets == 0:
		t.Fatalf("check %+v, produced %+v", s.Check, s.Produced)
	case !s.Restore.Available || s.Restore.RecordsCompared == 0 || s.Restore.RecordsCompared != s.Restore.Records || s.Restore.GroupOffsets != s.Check.GroupOffsets:
		t.Fatalf("restore %+v", s.Restore)
	case s.Kept:
		t.Fatalf("temporary repository %s kept", s.Repository)
	}
	if _, err := os.Stat(s.Repository); !os.IsNotExist(err) {
		t.Fatalf("temporary repository %s: %v; want it removed", s.Repository, err)
	}
}

// ktape demo --repo DIR prints each step and keeps the repository, whose
// backup ktape ls then lists.
func TestDemoText(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo-repo")
	code, out, errOut := runKtape(t, "demo", "--records", "100", "--repo", dir)
	if code != 0 || errOut != "" {
		t.Fatalf("demo: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	for _, want := range []string{"cluster ", "produce ", "backup ", "verify ", "check ", "restore    into a second kfake cluster", "group offsets translated",
		"repository " + dir + " (kept", "demo passed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	code, ls, _ := runKtape(t, "ls", "--repo", dir, "--json")
	if code != 0 || strings.Count(ls, `"message_type":"backup"`) != 1 {
		t.Fatalf("ls after the demo: exit %d: %s", code, ls)
	}
}

// A repository holding a real backup is refused (exit 2, naming where
// the value came from), with the JSON summary saying so and an
// exit_error naming the backup.
func TestDemoRefusesRealRepository(t *testing.T) {
	dir, m := makeRepo(t)
	t.Setenv("KTAPE_REPO", dir)
	code, out, errOut := runKtape(t, "demo", "--json", "--records", "50")
	if code != 2 || !strings.Contains(errOut, "$KTAPE_REPO "+dir) {
		t.Fatalf("exit %d, want 2 naming $KTAPE_REPO\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	var s demoSummary
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.MessageType != "demo" || s.Passed {
		t.Fatalf("stdout %s (%v): want a demo object, not passed", out, err)
	}
	if !strings.Contains(errOut, `"exit_error"`) || !strings.Contains(errOut, m.ID) {
		t.Fatalf("stderr %s: want an exit_error naming %s", errOut, m.ID)
	}
}

func TestDemoFlags(t *testing.T) {
	for _, n := range []string{"0", "-5", "1000001"} {
		if code, _, errOut := runKtape(t, "demo", "--records", n); code != 2 || !strings.Contains(errOut, "--records "+n) {
			t.Errorf("--records %s: exit %d, %q; want 2 naming the flag", n, code, errOut)
		}
	}
	// The config file's top-level repo is the real repository of the
	// other commands: the demo's is demo.repo, relative to the file.
	cfg := writeFile(t, "ktape.yaml", "repo: /backups/real\ndemo:\n  repo: demo-repo\n  records: 321\n")
	cmd, _, err := configure(t, "demo", "--config", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := flagValue(t, cmd, "repo"), filepath.Join(filepath.Dir(cfg), "demo-repo"); got != want {
		t.Errorf("demo --repo from the file: %q, want %q", got, want)
	}
	if got := flagValue(t, cmd, "records"); got != "321" {
		t.Errorf("demo --records from the file: %q", got)
	}
	cfg = writeFile(t, "ktape.yaml", "repo: /backups/real\n")
	if cmd, _, err = configure(t, "demo", "--config", cfg); err != nil {
		t.Fatal(err)
	}
	if got := flagValue(t, cmd, "repo"); got != "" {
		t.Errorf("demo --repo set to %q by the top-level repo key", got)
	}
}
