package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// The Kubernetes examples (docs/kubernetes) configure ktape through
// KTAPE_ variables: each must be one the command the container runs
// reads, or the example silently does something else than it says.
func TestKubernetesExamples(t *testing.T) {
	files, err := filepath.Glob("../../docs/kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		containers := 0
		walkContainers(doc, func(c map[string]any) {
			containers++
			args, _ := c["args"].([]any)
			if len(args) == 0 {
				t.Fatalf("%s: container %v runs no ktape command", file, c["name"])
			}
			var gopts GlobalOptions
			root := newRootCommand(&gopts)
			cmd, _, err := root.Find([]string{args[0].(string)})
			if err != nil || cmd == root {
				t.Fatalf("%s: ktape has no command %v", file, args[0])
			}
			known := map[string]bool{}
			for _, fs := range []*pflag.FlagSet{cmd.Flags(), cmd.InheritedFlags(), root.PersistentFlags()} {
				fs.VisitAll(func(f *pflag.Flag) { known[envName(f.Name)] = true })
			}
			env, _ := c["env"].([]any)
			n := 0
			for _, e := range env {
				name, _ := e.(map[string]any)["name"].(string)
				if strings.HasPrefix(name, envPrefix) {
					n++
					if !known[name] {
						t.Errorf("%s: %s is no flag of ktape %s", file, name, args[0])
					}
				}
			}
			if n == 0 {
				t.Errorf("%s: no KTAPE_ variable set", file)
			}
		})
		if containers == 0 {
			t.Errorf("%s: no container", file)
		}
	}
}

// walkContainers calls fn with every container spec in a decoded
// Kubernetes object.
func walkContainers(v any, fn func(map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		for k, sub := range v {
			if list, ok := sub.([]any); ok && k == "containers" {
				for _, c := range list {
					if cm, ok := c.(map[string]any); ok {
						fn(cm)
					}
				}
				continue
			}
			walkContainers(sub, fn)
		}
	case []any:
		for _, sub := range v {
			walkContainers(sub, fn)
		}
	}
}
