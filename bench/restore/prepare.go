package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ktape/ktape/bench/internal/harness"
	"github.com/ktape/ktape/bench/source"
)

// The records file's delimiters: after each key, and after each value.
// Values are ASCII text and never hold these bytes; keys are checked.
var (
	keyDelim    = []byte{0xf1, 0xf2, 0xf3, 0xf4}
	recordDelim = []byte{0xf5, 0xf6, 0xf7, 0xf8}
)

// kcatDelim spells a delimiter as kcat's -K and -D take it: \xNN each.
func kcatDelim(d []byte) string {
	var b strings.Builder
	for _, c := range d {
		fmt.Fprintf(&b, `\x%02x`, c)
	}
	return b.String()
}

// inputKey is what an input is prepared for.
type inputKey struct {
	size       int64
	partitions int
	codec      string
}

// input is one prepared topic: a repository holding its backup, the same
// in a repository encrypted to an age key, and a file of its records, kept
// in dir.
type input struct {
	dir       string
	topic     source.TopicInfo
	backup    harness.BackupTotals // zero without a repository
	ageBackup harness.BackupTotals // zero without an encrypted repository
	records   recordsInfo          // zero without a records file
}

// recordsInfo is records.json: the records file is complete.
type recordsInfo struct {
	Records int64 `json:"records"`
	Bytes   int64 `json:"bytes"`
}

func (in *input) repoDir() string     { return filepath.Join(in.dir, "repo") }
func (in *input) ageRepoDir() string  { return filepath.Join(in.dir, "repo-age") }
func (in *input) ageKey() string      { return filepath.Join(in.dir, "age.key") }
func (in *input) recordsPath() string { return filepath.Join(in.dir, "records") }

// topicArgs are the flags that make bench/source's topic for k, for
// serve-source.
func (r *runner) topicArgs(k inputKey) []string {
	return []string{"-topic", source.DefaultTopic, "-partitions", strconv.Itoa(k.partitions), "-size", strconv.FormatInt(k.size, 10),
		"-codec", k.codec, "-batch-bytes", strconv.FormatInt(r.opts.batchBytes, 10), "-pool-bytes", strconv.FormatInt(r.opts.poolBytes, 10)}
}

// prepare returns the input for k, making what is missing of it: the
// repository if repo, the encrypted repository and its key if ageRepo,
// the records file if records. What an earlier run left in -inputs is used
// again (each part is complete once its .json file exists). The topic is
// generated in processes of their own (serve-source, and this program
// re-run as write-records).
func (r *runner) prepare(k inputKey, repo, ageRepo, records bool) (*input, error) {
	name := fmt.Sprintf("%d-p%d-%s-b%d-pool%d", k.size, k.partitions, k.codec, r.opts.batchBytes, r.opts.poolBytes)
	in := &input{dir: filepath.Join(r.inputs, name)}
	if err := os.MkdirAll(in.dir, 0o755); err != nil {
		return nil, err
	}
	haveTopic, err := readJSON(filepath.Join(in.dir, "topic.json"), &in.topic)
	if err != nil {
		return nil, err
	}
	// setTopic records the topic a preparation found, which must be the
	// one an earlier one found.
	setTopic := func(ti source.TopicInfo) error {
		if haveTopic && (ti.Records != in.topic.Records || ti.Batches != in.topic.Batches || ti.Bytes != in.topic.Bytes) {
			return fmt.Errorf("the topic is now %+v, but was %+v", ti, in.topic)
		}
		ti.GenerateSeconds = 0
		in.topic, haveTopic = ti, true
		return writeJSON(filepath.Join(in.dir, "topic.json"), ti)
	}
	if repo {
		have, err := readJSON(filepath.Join(in.dir, "repo.json"), &in.backup)
		if err != nil {
			return nil, err
		}
		if !have {
			ti, err := r.prepareRepo(k, in)
			if err == nil {
				err = setTopic(ti)
			}
			if err == nil {
				err = writeJSON(filepath.Join(in.dir, "repo.json"), in.backup)
			}
			if err != nil {
				return nil, fmt.Errorf("prepare the repository of %s: %w", name, err)
			}
		}
	}
	if ageRepo {
		have, err := readJSON(filepath.Join(in.dir, "repo-age.json"), &in.ageBackup)
		if err != nil {
			return nil, err
		}
		if !have {
			ti, err := r.prepareAgeRepo(k, in)
			if err == nil {
				err = setTopic(ti)
			}
			if err == nil {
				err = writeJSON(filepath.Join(in.dir, "repo-age.json"), in.ageBackup)
			}
			if err != nil {
				return nil, fmt.Errorf("prepare the encrypted repository of %s: %w", name, err)
			}
		}
	}
	if records {
		have, err := readJSON(filepath.Join(in.dir, "records.json"), &in.records)
		if err != nil {
			return nil, err
		}
		if !have {
			ti, err := r.prepareRecords(k, in)
			if err == nil {
				err = setTopic(ti)
			}
			if err == nil {
				err = writeJSON(filepath.Join(in.dir, "records.json"), in.records)
			}
			if err != nil {
				return nil, fmt.Errorf("prepare the records file of %s: %w", name, err)
			}
		}
	}
	if !haveTopic {
		return nil, fmt.Errorf("%s: no topic.json", in.dir)
	}
	return in, nil
}

// prepareRepo backs the topic up with ktape from bench/source into a new
// repository and checks that it holds every record, batch and byte.
func (r *runner) prepareRepo(k inputKey, in *input) (source.TopicInfo, error) {
	var ti source.TopicInfo
	if err := os.RemoveAll(in.repoDir()); err != nil {
		return ti, err
	}
	fmt.Fprintf(r.stderr, "restore: preparing %s: ktape backup from bench/source\n", in.dir)
	tot, ti, err := r.backupInto(k, in.repoDir(), "", "")
	in.backup = tot
	return ti, err
}

// prepareAgeRepo is prepareRepo into a new repository encrypted to a new
// age key, kept beside it (age.key) for the restores to read it with: the
// same key is the repository's recipient and the backup's identity.
func (r *runner) prepareAgeRepo(k inputKey, in *input) (source.TopicInfo, error) {
	var ti source.TopicInfo
	if err := os.RemoveAll(in.ageRepoDir()); err != nil {
		return ti, err
	}
	if err := os.Remove(in.ageKey()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return ti, err
	}
	fmt.Fprintf(r.stderr, "restore: preparing %s: ktape keygen, ktape backup --encrypt-to from bench/source\n", in.dir)
	recipient, err := harness.Keygen(r.ktapeBin, in.ageKey())
	if err != nil {
		return ti, err
	}
	tot, ti, err := r.backupInto(k, in.ageRepoDir(), recipient, in.ageKey())
	in.ageBackup = tot
	return ti, err
}

// backupInto runs ktape backup of k's topic from a new bench/source into
// the new repository repoDir, encrypted to recipient with identityFile
// unless they are empty, and checks it (harness.CheckBackup) against the
// topic.
func (r *runner) backupInto(k inputKey, repoDir, recipient, identityFile string) (harness.BackupTotals, source.TopicInfo, error) {
	var (
		ti  source.TopicInfo
		tot harness.BackupTotals
	)
	srv, err := harness.StartServer("serve-source", r.self, append([]string{"serve-source"}, r.topicArgs(k)...), r.selfEnv, r.stderr)
	if err != nil {
		return tot, ti, err
	}
	defer srv.Kill()
	if err := json.Unmarshal(srv.Info, &ti); err != nil {
		return tot, ti, fmt.Errorf("serve-source topic line %q: %w", srv.Info, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	args := []string{"backup", "--brokers", srv.Addr, "--repo", repoDir, "--json",
		"--compression", "none", "--memory", strconv.FormatInt(r.opts.memory, 10)}
	if recipient != "" {
		args = append(args, "--encrypt-to", recipient, "--identity-file", identityFile)
	}
	cmd := exec.CommandContext(ctx, r.ktapeBin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return tot, ti, fmt.Errorf("ktape backup: %v: %s", err, harness.LastLines(stderr.String(), 5))
	}
	if _, err := srv.Stop(); err != nil {
		return tot, ti, err
	}
	tot, err = harness.CheckBackup(ctx, stdout.Bytes(), repoDir, identityFile)
	if err != nil {
		return tot, ti, err
	}
	if tot.Records != ti.Records || tot.Batches != ti.Batches || tot.Bytes != ti.Bytes {
		return tot, ti, fmt.Errorf("the backup holds %d records, %d batches, %d bytes; the topic %d, %d, %d",
			tot.Records, tot.Batches, tot.Bytes, ti.Records, ti.Batches, ti.Bytes)
	}
	return tot, ti, nil
}

// prepareRecords writes the records file with this program re-run as
// write-records.
func (r *runner) prepareRecords(k inputKey, in *input) (source.TopicInfo, error) {
	fmt.Fprintf(r.stderr, "restore: preparing %s: the records file\n", in.dir)
	var out struct {
		Topic   source.TopicInfo `json:"topic"`
		Records recordsInfo      `json:"records"`
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(r.self, append([]string{"write-records", "-out", in.recordsPath()}, r.topicArgs(k)...)...)
	cmd.Env = append(os.Environ(), r.selfEnv...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return out.Topic, fmt.Errorf("write-records: %v: %s", err, harness.LastLines(stderr.String(), 5))
	}
	if err := json.Unmarshal([]byte(harness.LastLine(stdout.String())), &out); err != nil {
		return out.Topic, fmt.Errorf("write-records printed %q: %w", harness.LastLine(stdout.String()), err)
	}
	in.records = out.Records
	return out.Topic, nil
}

// writeRecords is the write-records command: it generates the topic
// bench/source's flags describe and writes every record to -out, partition
// by partition, in offset order, each as key, keyDelim, value,
// recordDelim; then prints the topic's info and the file's as one JSON
// line. The file appears whole or not at all.
func writeRecords(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("write-records", flag.ContinueOnError)
	fs.SetOutput(stderr)
	topicConfig := source.TopicFlags(fs)
	out := fs.String("out", "", "the records file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	tc, err := topicConfig()
	if err == nil && *out == "" {
		err = errors.New("-out is required")
	}
	if err != nil {
		fmt.Fprintln(stderr, "write-records:", err)
		return 2
	}
	t, err := source.Generate(tc)
	if err != nil {
		fmt.Fprintln(stderr, "write-records:", err)
		return 2
	}
	info, err := writeRecordsFile(t, *out)
	if err != nil {
		fmt.Fprintln(stderr, "write-records:", err)
		return 1
	}
	line, err := json.Marshal(struct {
		Topic   source.TopicInfo `json:"topic"`
		Records recordsInfo      `json:"records"`
	}{t.Info(), info})
	if err != nil {
		fmt.Fprintln(stderr, "write-records:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", line)
	return 0
}

func writeRecordsFile(t *source.Topic, path string) (recordsInfo, error) {
	var info recordsInfo
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return info, err
	}
	defer os.Remove(tmp)
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	cfg := t.Config()
	key, value := make([]byte, cfg.KeyBytes), make([]byte, cfg.ValueBytes)
	var rec []byte
	for p := range t.NumPartitions() {
		for off := range t.HighWatermark(p) {
			t.Record(p, off, key, value)
			rec = append(append(append(append(rec[:0], key...), keyDelim...), value...), recordDelim...)
			// Each delimiter must be found first where it was put.
			if bytes.Index(rec, keyDelim) != len(key) || bytes.Index(rec, recordDelim) != len(rec)-len(recordDelim) {
				return info, fmt.Errorf("partition %d offset %d: the record holds a delimiter (key %x)", p, off, key)
			}
			if _, err := w.Write(rec); err != nil {
				return info, err
			}
			info.Records++
			info.Bytes += int64(len(rec))
		}
	}
	if err := w.Flush(); err != nil {
		return info, err
	}
	if err := f.Close(); err != nil {
		return info, err
	}
	return info, os.Rename(tmp, path)
}

// readJSON reads path into v; false if the file does not exist.
func readJSON(path string, v any) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	return true, nil
}

// writeJSON writes v to path, whole or not at all.
func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
