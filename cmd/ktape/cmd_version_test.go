package main

import (
	"bytes"
	"context"
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

func TestRunVersionText(t *testing.T) {
	var out bytes.Buffer
	if err := runVersion(context.Background(), VersionOptions{}, GlobalOptions{}, &out); err != nil {
		t.Fatal(err)
	}
	want := "ktape " + ktapeVersion() + " compiled with " + runtime.Version() + " on " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	if out.String() != want {
		t.Errorf("output = %q, want %q", &out, want)
	}
}

func TestRunVersionJSON(t *testing.T) {
	var out bytes.Buffer
	if err := runVersion(context.Background(), VersionOptions{}, GlobalOptions{JSON: true}, &out); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "\n"); n != 1 {
		t.Errorf("output has %d lines, want 1 JSON object:\n%s", n, &out)
	}
	var got map[string]string
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("output is not a JSON object of strings: %v\n%s", err, &out)
	}
	want := map[string]string{
		"message_type": "version",
		"version":      ktapeVersion(),
		"go_version":   runtime.Version(),
		"go_os":        runtime.GOOS,
		"go_arch":      runtime.GOARCH,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("fields = %v, want exactly %v", got, want)
	}
}

func TestKtapeVersionNotEmpty(t *testing.T) {
	if ktapeVersion() == "" {
		t.Error("ktapeVersion() is empty; want a version or \"dev\"")
	}
}
