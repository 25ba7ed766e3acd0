package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The example config file parses, sets every flag it names, and mentions
// every key there is (set or commented out), so it cannot fall behind the
// flags. The README shows the same file.
func TestExampleConfig(t *testing.T) {
	const example = "../../docs/ktape.example.yaml"
	for _, cmd := range []string{"backup", "verify", "ls", "demo"} {
		if _, _, err := configure(t, cmd, "--config", example); err != nil {
			t.Fatalf("%s --config %s: %v", cmd, example, err)
		}
	}
	b, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	var gopts GlobalOptions
	s, err := buildSchema(newRootCommand(&gopts))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range s.paths {
		key := path[len(path)-1]
		indent := strings.Repeat("  ", len(path)-1)
		if !regexp.MustCompile(`(?m)^` + indent + `#? ?` + regexp.QuoteMeta(key) + `:`).Match(b) {
			t.Errorf("%s does not mention %s (set or commented out, indented as in its section)", example, strings.Join(path, "."))
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```yaml\n"+string(b)+"```\n") {
		t.Errorf("README.md's Configuration section does not show %s as it is; paste it again", example)
	}
}
