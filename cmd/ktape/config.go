package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// Every flag of every command can also be set in the environment and in a
// YAML config file, with no code per flag: names are derived.
//
//	flag        --checkpoint-interval of backup   --tls-ca
//	environment KTAPE_CHECKPOINT_INTERVAL         KTAPE_TLS_CA
//	config file backup: {checkpoint_interval: …}  tls: {ca: …}
//
// A flag marked shared (connection, repository and global flags) sits at
// the top level of the file; any other under its command's section. A flag
// whose first word is a group (tls, sasl) sits in that group's section,
// and a flag named after a group is the section's "enabled" key.
// Precedence: command line, then environment, then file, then default.
//
// Values from every source go through the flag's own Set, so they are
// parsed and checked exactly as on the command line. Cobra checks required
// flags before the environment and file are read: don't mark flags
// required; check in runX instead.

// Flag annotations that steer configuration.
const (
	annShared = "ktape_shared" // set at the top level of the config file, whichever command owns it
	annSecret = "ktape_secret" // the value never appears in an error message
	annPath   = "ktape_path"   // a file or directory: relative in a config file means relative to that file (URLs aside)
)

// configGroups are the flag-name prefixes that become config sections.
var configGroups = []string{"tls", "sasl"}

// envPrefix starts every environment variable ktape reads.
const envPrefix = "KTAPE_"

func markShared(fs *pflag.FlagSet, names ...string) { annotate(fs, annShared, names) }
func markSecret(fs *pflag.FlagSet, names ...string) { annotate(fs, annSecret, names) }
func markPath(fs *pflag.FlagSet, names ...string)   { annotate(fs, annPath, names) }

// annotate panics on an unknown flag name: that is a bug in an AddFlags,
// caught by any test that builds the command.
func annotate(fs *pflag.FlagSet, key string, names []string) {
	for _, n := range names {
		if err := fs.SetAnnotation(n, key, []string{"true"}); err != nil {
			panic(fmt.Sprintf("annotate flag %q: %v", n, err))
		}
	}
}

func hasAnnotation(f *pflag.Flag, key string) bool {
	_, ok := f.Annotations[key]
	return ok
}

// envName returns the environment variable of a flag: KTAPE_ and the name
// in upper case with dashes as underscores.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// configurable reports whether a flag can be set from the environment or
// the file: all but --help, --config itself and hidden flags
// (--cpu-profile, for developers: the command line only).
func configurable(f *pflag.Flag) bool { return f.Name != "help" && f.Name != "config" && !f.Hidden }

// keyPath returns a flag's key in the config file, as the path of section
// names and the key, for flag f owned by command c.
func keyPath(c *cobra.Command, f *pflag.Flag) []string {
	var path []string
	if !hasAnnotation(f, annShared) {
		path = strings.Fields(c.CommandPath())[1:] // the words after "ktape"
	}
	key := strings.ReplaceAll(f.Name, "-", "_")
	for _, g := range configGroups {
		if key == g {
			return append(path, g, "enabled")
		}
		if rest, ok := strings.CutPrefix(key, g+"_"); ok {
			return append(path, g, rest)
		}
	}
	return append(path, key)
}

// sources says where each flag's value came from, by flag name, so that an
// error about a value can point at it: "--tls-ca", "$KTAPE_TLS_CA" or
// "ktape.yaml:7: tls.ca". A flag left at its default is absent.
type sources map[string]string

// of describes where flag was set; a flag not in s is named as on the
// command line.
func (s sources) of(flag string) string {
	if d, ok := s[flag]; ok {
		return d
	}
	return "--" + flag
}

// rank orders where flag was set by precedence: 3 the command line, 2 the
// environment, 1 the config file, 0 not set.
func (s sources) rank(flag string) int {
	d, ok := s[flag]
	switch {
	case !ok:
		return 0
	case strings.HasPrefix(d, "--"):
		return 3
	case strings.HasPrefix(d, "$"):
		return 2
	}
	return 1
}

// set reports whether flag was set anywhere.
func (s sources) set(flag string) bool {
	_, ok := s[flag]
	return ok
}

// configSchema is the shape of the config file, derived from the flags of
// every command: sections, and keys that are flags.
type configSchema struct {
	root  *schemaNode
	paths map[*pflag.Flag][]string // every configurable flag's key path
}

type schemaNode struct {
	children map[string]*schemaNode // a section's keys; nil for a key
	typ      string                 // a key's flag value type
	list     bool                   // a key whose flag takes a list
}

// buildSchema derives the config file's shape from root's command tree.
// Errors are bugs in flag definitions (two flags claiming one key
// differently), which any test that runs a command finds.
func buildSchema(root *cobra.Command) (*configSchema, error) {
	s := &configSchema{root: &schemaNode{children: map[string]*schemaNode{}}, paths: map[*pflag.Flag][]string{}}
	var walk func(c *cobra.Command) error
	walk = func(c *cobra.Command) error {
		if isCobraCommand(c) {
			return nil
		}
		var err error
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if err != nil || !configurable(f) {
				return
			}
			path := keyPath(c, f)
			s.paths[f] = path
			err = s.add(path, f)
		})
		if err != nil {
			return fmt.Errorf("%s: %w", c.CommandPath(), err)
		}
		for _, sub := range c.Commands() {
			if err := walk(sub); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(root); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *configSchema) add(path []string, f *pflag.Flag) error {
	_, list := f.Value.(pflag.SliceValue)
	n := s.root
	for i, name := range path {
		child := n.children[name]
		last := i == len(path)-1
		switch {
		case child == nil && last:
			n.children[name] = &schemaNode{typ: f.Value.Type(), list: list}
			return nil
		case child == nil:
			child = &schemaNode{children: map[string]*schemaNode{}}
			n.children[name] = child
		case last && child.children == nil:
			if child.typ != f.Value.Type() || child.list != list {
				return fmt.Errorf("flag --%s: config key %s is already a %s", f.Name, strings.Join(path, "."), child.typ)
			}
			return nil
		case last || child.children == nil:
			return fmt.Errorf("flag --%s: config key %s is both a section and a key", f.Name, strings.Join(path[:i+1], "."))
		}
		n = child
	}
	return nil
}

// isCobraCommand reports whether c is one cobra adds itself (help,
// completion), which take no configuration.
func isCobraCommand(c *cobra.Command) bool {
	for ; c.HasParent(); c = c.Parent() {
		if !c.Parent().HasParent() {
			return c.Name() == "help" || c.Name() == "completion"
		}
	}
	return false
}

// configFile is a parsed, checked config file: the value of each key it
// sets.
type configFile struct {
	name   string
	values map[string]configValue // by dotted key path
}

type configValue struct {
	line  int
	items []string // one for a scalar
	list  bool     // given as a YAML sequence
}

// loadConfig reads the config file name and checks it against s: every
// key known, sections as sections, lists only for list flags. Values are
// checked later, by the flags they set. Errors name the file, the line and
// the key.
func loadConfig(name string, s *configSchema) (*configFile, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	cf := &configFile{name: name, values: map[string]configValue{}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF):
		return cf, nil // an empty file sets nothing
	case err != nil:
		return nil, fmt.Errorf("config file %s: %w", name, err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config file %s: more than one YAML document (a second starts at line %d); want one", name, more.Line)
	}
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return cf, nil // comments only
		}
		return cf, cf.walk(doc.Content[0], s.root, s, nil)
	}
	return cf, cf.walk(&doc, s.root, s, nil)
}

// walk checks the section n of the file against the schema node sn at
// path prefix, collecting the values of its keys.
func (cf *configFile) walk(n *yaml.Node, sn *schemaNode, s *configSchema, prefix []string) error {
	n = unalias(n)
	where := "the top level"
	if len(prefix) > 0 {
		where = "section " + strings.Join(prefix, ".")
	}
	if isNull(n) {
		return nil // "backup:" with nothing under it
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: %s: want keys (a YAML mapping), not %s", cf.name, n.Line, where, kindName(n))
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := unalias(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return fmt.Errorf("%s:%d: %s: a key must be a name, not %s", cf.name, k.Line, where, kindName(k))
		}
		path := append(slices.Clone(prefix), k.Value)
		key := strings.Join(path, ".")
		if line, dup := seen[k.Value]; dup {
			return fmt.Errorf("%s:%d: %s is set twice (first at line %d)", cf.name, k.Line, key, line)
		}
		seen[k.Value] = k.Line
		child := sn.children[k.Value]
		switch {
		case child == nil:
			return fmt.Errorf("%s:%d: unknown key %q in %s%s", cf.name, k.Line, k.Value, where, s.hint(prefix, sn, k.Value))
		case child.children != nil:
			if err := cf.walk(v, child, s, path); err != nil {
				return err
			}
		default:
			val, err := cf.value(v, child, key)
			if err != nil {
				return err
			}
			cf.values[key] = val
		}
	}
	return nil
}

// value checks the value v of key, a flag of schema node sn.
func (cf *configFile) value(v *yaml.Node, sn *schemaNode, key string) (configValue, error) {
	v = unalias(v)
	val := configValue{line: v.Line}
	switch {
	case isNull(v):
		return val, fmt.Errorf("%s:%d: %s has no value; give one or delete the key", cf.name, v.Line, key)
	case v.Kind == yaml.ScalarNode:
		val.items = []string{v.Value}
	case v.Kind == yaml.SequenceNode && sn.list:
		val.list = true
		for _, item := range v.Content {
			item = unalias(item)
			if item.Kind != yaml.ScalarNode || isNull(item) {
				return val, fmt.Errorf("%s:%d: %s: each item must be a single value, not %s", cf.name, item.Line, key, kindName(item))
			}
			val.items = append(val.items, item.Value)
		}
	case v.Kind == yaml.SequenceNode:
		return val, fmt.Errorf("%s:%d: %s takes one value, not a list", cf.name, v.Line, key)
	default:
		return val, fmt.Errorf("%s:%d: %s takes a value, not %s", cf.name, v.Line, key, kindName(v))
	}
	return val, nil
}

// hint helps with an unknown key in section sn at prefix: the spelling
// with underscores, the section the key belongs in, or the keys there are.
func (s *configSchema) hint(prefix []string, sn *schemaNode, key string) string {
	if u := strings.ReplaceAll(key, "-", "_"); u != key && sn.children[u] != nil {
		return fmt.Sprintf(" (did you mean %q? keys use underscores)", u)
	}
	var elsewhere []string
	var find func(n *schemaNode, path []string)
	find = func(n *schemaNode, path []string) {
		for name, c := range n.children {
			p := append(slices.Clone(path), name)
			if c.children != nil {
				find(c, p)
			} else if name == key {
				elsewhere = append(elsewhere, strings.Join(p, "."))
			}
		}
	}
	find(s.root, nil)
	if len(elsewhere) > 0 {
		slices.Sort(elsewhere)
		return fmt.Sprintf(" (did you mean %s?)", orList(elsewhere))
	}
	keys := make([]string, 0, len(sn.children))
	for name := range sn.children {
		keys = append(keys, name)
	}
	slices.Sort(keys)
	return "; known keys: " + strings.Join(keys, ", ")
}

func unalias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "this"
}

// applyConfig fills the flags of cmd that the command line left unset,
// from the environment and then from the config file (--config or
// $KTAPE_CONFIG), and records in gopts.Sources where every set flag's
// value came from. It runs after cobra parsed the command line, before the
// command. Errors are usage errors naming the variable, or the file, line
// and key.
func applyConfig(cmd *cobra.Command, gopts *GlobalOptions) error {
	gopts.Sources = sources{}
	if isCobraCommand(cmd) {
		return nil
	}
	schema, err := buildSchema(cmd.Root())
	if err != nil {
		return err
	}
	fs := cmd.Flags()
	src := gopts.Sources
	fs.Visit(func(f *pflag.Flag) { src[f.Name] = "--" + f.Name })
	if !src.set("config") {
		if v := os.Getenv(envName("config")); v != "" {
			gopts.Config, src["config"] = v, "$"+envName("config")
		}
	}
	var cf *configFile
	if gopts.Config != "" {
		if cf, err = loadConfig(gopts.Config, schema); err != nil {
			return usageError{err}
		}
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || src.set(f.Name) || !configurable(f) {
			return
		}
		if v := os.Getenv(envName(f.Name)); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = usageError{fmt.Errorf("$%s%s: %w", envName(f.Name), shown(f, v), cause(e))}
				return
			}
			src[f.Name] = "$" + envName(f.Name)
			return
		}
		path, ok := schema.paths[f]
		if cf == nil || !ok {
			return
		}
		key := strings.Join(path, ".")
		val, ok := cf.values[key]
		if !ok {
			return
		}
		where := fmt.Sprintf("%s:%d: %s", cf.name, val.line, key)
		if e := cf.set(fs, f, val); e != nil {
			err = usageError{fmt.Errorf("%s%s: %w", where, shown(f, strings.Join(val.items, ", ")), cause(e))}
			return
		}
		src[f.Name] = where
	})
	return err
}

// set gives flag f of fs the value val from the file: a list replaces the
// flag's whole value; a scalar is parsed as on the command line. A relative
// file name is taken relative to the config file's directory, as its author
// sees it, not to wherever ktape happens to run; URLs are left alone.
func (cf *configFile) set(fs *pflag.FlagSet, f *pflag.Flag, val configValue) error {
	items := val.items
	if hasAnnotation(f, annPath) {
		items = slices.Clone(items)
		for i, it := range items {
			if it != "" && !filepath.IsAbs(it) && !strings.Contains(it, "://") {
				items[i] = filepath.Join(filepath.Dir(cf.name), it)
			}
		}
	}
	if !val.list {
		return fs.Set(f.Name, items[0])
	}
	if err := f.Value.(pflag.SliceValue).Replace(items); err != nil {
		return err
	}
	f.Changed = true
	return nil
}

// shown renders a value for an error message: ` "value"`, or nothing for a
// secret.
func shown(f *pflag.Flag, v string) string {
	if hasAnnotation(f, annSecret) {
		return ""
	}
	return fmt.Sprintf(" %q", v)
}

// cause strips pflag's "invalid argument … for … flag" wrapping, which
// names the command-line flag even when the value came from elsewhere.
func cause(err error) error {
	var iv *pflag.InvalidValueError
	if errors.As(err, &iv) && iv.Unwrap() != nil {
		return iv.Unwrap()
	}
	return err
}
