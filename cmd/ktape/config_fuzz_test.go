package main

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadConfig feeds arbitrary bytes to the YAML config loader as a
// config file: it must return a config or an error naming the file, never
// panic (the seeds are the example config and small broken variants; the
// corpus under testdata/fuzz/FuzzLoadConfig runs in every `go test`).
func FuzzLoadConfig(f *testing.F) {
	if b, err := os.ReadFile("../../docs/ktape.example.yaml"); err == nil {
		f.Add(b)
	}
	for _, s := range []string{
		"", "# only a comment\n", "source:\n  kafka_config:\n    bootstrap.servers: a:1\n",
		"backup:\n  compression: zstd\n  compression_level: 99\n", "a: &x [*x]\n", "- 1\n- 2\n",
		"source: [1, 2]\n", "restore:\n  remap: {a: b}\n", "---\n---\n", "source:\n  kafka_config:\n    sasl.password: !!binary aGk=\n",
		"x: &a [*a, *a, *a, *a]\ny: &b [*a, *a, *a]\n",
	} {
		f.Add([]byte(s))
	}
	var gopts GlobalOptions
	s, err := buildSchema(newRootCommand(&gopts))
	if err != nil {
		f.Fatal(err)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		name := filepath.Join(dir, "fuzz.yaml")
		if err := os.WriteFile(name, b, 0o600); err != nil {
			t.Fatal(err)
		}
		cf, err := loadConfig(name, s)
		if err == nil && cf == nil {
			t.Fatal("no config and no error")
		}
	})
}
