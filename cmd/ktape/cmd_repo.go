package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// RepoOptions locate a repository: --repo, $KTAPE_REPO, or repo at the top
// level of the config file, shared by every command.
type RepoOptions struct {
	URL          string
	IdentityFile string
}

// AddFlags registers --repo and --identity-file on fs.
func (o *RepoOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.URL, "repo", "", "repository: a directory, or s3://, gs://, azblob:// URL (default $KTAPE_REPO)")
	fs.StringVar(&o.IdentityFile, "identity-file", "", "`FILE` holding the age private key that opens an encrypted repository: a recipient's reads everything, a writer's only its metadata (see ktape keygen)")
	markShared(fs, "repo", "identity-file")
	markPath(fs, "repo", "identity-file")
}

// open opens the repository; it must exist.
func (o RepoOptions) open(ctx context.Context) (*repo.Repository, error) {
	if o.URL == "" {
		return nil, usageError{errors.New("no repository: give --repo or set KTAPE_REPO")}
	}
	k, err := o.keys(nil)
	if err != nil {
		return nil, err
	}
	st, err := storage.OpenExisting(ctx, o.URL)
	if err != nil {
		return nil, err
	}
	return repo.OpenKeys(ctx, st, false, k)
}

// backupOrNewest returns the manifest of the backup named in args, or of
// the newest one.
func backupOrNewest(ctx context.Context, r *repo.Repository, args []string) (*repo.Manifest, error) {
	if len(args) == 1 {
		return r.Manifest(ctx, args[0])
	}
	ids, err := r.Backups(ctx)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, errors.New("the repository holds no complete backup")
	}
	return r.Manifest(ctx, ids[len(ids)-1])
}

// backupSummary is one line of ls.
type backupSummary struct {
	MessageType string    `json:"message_type"`
	ID          string    `json:"id"`
	Parent      string    `json:"parent,omitempty"`
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished"`
	Mode        string    `json:"mode"`
	ClusterID   string    `json:"cluster_id"`
	Topics      int       `json:"topics"`
	Partitions  int       `json:"partitions"`
	Segments    int       `json:"segments"`
	DataBytes   uint64    `json:"data_bytes"`
	StoredBytes uint64    `json:"stored_bytes"`
	Checkpoint  int       `json:"checkpoint,omitempty"` // of an unfinished run: its newest
	// WorkersGroup is the group of workers that shares (or shared) the run.
	WorkersGroup string `json:"workers_group,omitempty"`
}

func summarize(m *repo.Manifest) backupSummary {
	s := backupSummary{MessageType: "backup", ID: m.ID, Parent: m.Parent, Started: m.Started, Finished: m.Finished,
		Mode: m.Mode, ClusterID: m.Source.ClusterID, Topics: len(m.Topics), WorkersGroup: m.WorkersGroup}
	for _, t := range m.Topics {
		s.Partitions += len(t.Partitions)
		for _, p := range t.Partitions {
			s.Segments += len(p.Segments)
			for _, seg := range p.Segments {
				s.DataBytes += seg.DataBytes
				s.StoredBytes += seg.StoredBytes
			}
		}
	}
	return s
}

func newLsCommand(gopts *GlobalOptions) *cobra.Command {
	var ropts RepoOptions
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the complete backups in a repository",
		Long: `List the complete backups in a repository, oldest first: id, start time,
mode, topics, partitions and size; then the runs still going or interrupted
(resumed by the next backup), with what their newest checkpoint holds. With
--json, one JSON object per backup ("message_type":"backup") and per run
("message_type":"unfinished_run").

` + exitStatusHelp(),
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLs(cmd.Context(), ropts, *gopts, cmd.OutOrStdout())
		},
	}
	ropts.AddFlags(cmd.Flags())
	return cmd
}

func runLs(ctx context.Context, ropts RepoOptions, gopts GlobalOptions, out io.Writer) error {
	r, err := ropts.open(ctx)
	if err != nil {
		return err
	}
	ids, err := r.Backups(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if !gopts.JSON {
		fmt.Fprintln(tw, "ID\tSTARTED\tMODE\tTOPICS\tPARTITIONS\tDATA\tSTORED")
	}
	enc := json.NewEncoder(out)
	for _, id := range ids {
		m, err := r.Manifest(ctx, id)
		if err != nil {
			return err
		}
		s := summarize(m)
		if gopts.JSON {
			if err := enc.Encode(s); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", s.ID, s.Started.Format(time.RFC3339), s.Mode, s.Topics, s.Partitions, size(s.DataBytes), size(s.StoredBytes))
	}
	// Runs still going, or interrupted: what their newest checkpoint holds.
	runs, err := r.Unfinished(ctx)
	if err != nil {
		return err
	}
	for _, run := range runs {
		seq := run.Checkpoints[len(run.Checkpoints)-1]
		m, err := r.Checkpoint(ctx, run.ID, seq)
		if err != nil {
			return err
		}
		how := fmt.Sprintf("checkpoint %d", seq)
		if m.WorkersGroup != "" {
			// A shared run's progress is in its workers' checkpoints.
			best, read, err := r.BestPartitions(ctx, m)
			if err != nil {
				return err
			}
			for i := range m.Topics {
				for j := range m.Topics[i].Partitions {
					m.Topics[i].Partitions[j] = *best[m.Topics[i].Name][m.Topics[i].Partitions[j].Partition]
				}
			}
			how = fmt.Sprintf("shared by workers group %s, %d worker checkpoints", m.WorkersGroup, len(read))
		}
		s := summarize(m)
		s.MessageType, s.Checkpoint = "unfinished_run", seq
		if gopts.JSON {
			if err := enc.Encode(s); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s (unfinished, %s of %s)\t%d\t%d\t%s\t%s\n", s.ID, s.Started.Format(time.RFC3339), s.Mode, how,
			s.Finished.Format(time.RFC3339), s.Topics, s.Partitions, size(s.DataBytes), size(s.StoredBytes))
	}
	return tw.Flush()
}

func newDescribeCommand(gopts *GlobalOptions) *cobra.Command {
	var ropts RepoOptions
	cmd := &cobra.Command{
		Use:   "describe [BACKUP]",
		Short: "Show a backup's topics, partitions, ranges, sizes and gaps",
		Long: `Show what a backup holds (the newest one when no id is given): per topic and
partition, the offset range backed up, the time range of its batches, its
segments and sizes, and any gaps (offsets the log no longer had). With
--json, the backup's manifest itself.

` + exitStatusHelp(),
		Args: maxOneArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDescribe(cmd.Context(), ropts, *gopts, args, cmd.OutOrStdout())
		},
	}
	ropts.AddFlags(cmd.Flags())
	return cmd
}

func runDescribe(ctx context.Context, ropts RepoOptions, gopts GlobalOptions, args []string, out io.Writer) error {
	r, err := ropts.open(ctx)
	if err != nil {
		return err
	}
	m, err := backupOrNewest(ctx, r, args)
	if err != nil {
		return err
	}
	if gopts.JSON {
		return json.NewEncoder(out).Encode(struct {
			MessageType string `json:"message_type"`
			*repo.Manifest
		}{"manifest", m})
	}
	s := summarize(m)
	fmt.Fprintf(out, "backup %s (%s, %s)\nstarted %s, finished %s; cluster %s\n%d topics, %d partitions, %d segments, %s of batches (%s stored)\n\n",
		m.ID, m.Mode, m.Isolation, m.Started.Format(time.RFC3339), m.Finished.Format(time.RFC3339), m.Source.ClusterID,
		s.Topics, s.Partitions, s.Segments, size(s.DataBytes), size(s.StoredBytes))
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tOFFSETS\tTIMES\tSEGMENTS\tDATA\tGAPS")
	for _, t := range m.Topics {
		for _, p := range t.Partitions {
			var data uint64
			first, last := int64(-1), int64(-1)
			for _, seg := range p.Segments {
				data += seg.DataBytes
				if first < 0 || seg.FirstTime < first {
					first = seg.FirstTime
				}
				last = max(last, seg.MaxTime)
			}
			times := "-"
			if first >= 0 {
				times = time.UnixMilli(first).UTC().Format(time.RFC3339) + " .. " + time.UnixMilli(last).UTC().Format(time.RFC3339)
			}
			gaps := "-"
			if len(p.Gaps) > 0 {
				gaps = ""
				for i, g := range p.Gaps {
					if i > 0 {
						gaps += ", "
					}
					gaps += fmt.Sprintf("[%d, %d) %s", g.From, g.To, g.Reason)
				}
			}
			fmt.Fprintf(tw, "%s\t%d\t[%d, %d)\t%s\t%d\t%s\t%s\n", t.Name, p.Partition, p.From, p.To, times, len(p.Segments), size(data), gaps)
		}
	}
	return tw.Flush()
}

// damageError is verify finding damage: exit code 3.
type damageError struct{ n int }

func (e damageError) Error() string { return fmt.Sprintf("verify found %d problems", e.n) }

func isDamage(err error) bool {
	var d damageError
	return errors.As(err, &d)
}

func newVerifyCommand(gopts *GlobalOptions) *cobra.Command {
	var ropts RepoOptions
	var deep bool
	cmd := &cobra.Command{
		Use:   "verify [BACKUP]",
		Short: "Check that a backup's objects are all there and intact",
		Long: `Check every object a backup (the newest one when no id is given) names: each
segment's length and SHA-256, and that its index agrees with the manifest.
With --deep, also read every batch: its CRC-32C, its index entry, and that
every offset of each partition's range is in a batch or a recorded gap.

Each problem is printed with the object and the byte position of the damage;
with --json, one "problem" object per line, then a "verify" summary.

` + exitStatusHelp(),
		Args: maxOneArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVerify(cmd.Context(), ropts, *gopts, deep, args, cmd.OutOrStdout())
		},
	}
	ropts.AddFlags(cmd.Flags())
	cmd.Flags().BoolVar(&deep, "deep", false, "read every batch, not only checksums")
	return cmd
}

func runVerify(ctx context.Context, ropts RepoOptions, gopts GlobalOptions, deep bool, args []string, out io.Writer) error {
	r, err := ropts.open(ctx)
	if err != nil {
		return err
	}
	m, err := backupOrNewest(ctx, r, args)
	if err != nil {
		return err
	}
	errs := r.Verify(ctx, m, deep)
	garbage, err := r.Unreferenced(ctx)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	for _, e := range errs {
		if gopts.JSON {
			enc.Encode(struct {
				MessageType string `json:"message_type"`
				Problem     string `json:"problem"`
			}{"problem", e.Error()})
		} else {
			fmt.Fprintln(out, "DAMAGED:", e)
		}
	}
	s := summarize(m)
	if gopts.JSON {
		enc.Encode(struct {
			MessageType string `json:"message_type"`
			Backup      string `json:"backup"`
			Deep        bool   `json:"deep"`
			Segments    int    `json:"segments"`
			Problems    int    `json:"problems"`
			// Objects no backup or unfinished run names: not damage.
			Unreferenced int `json:"unreferenced_objects"`
		}{"verify", m.ID, deep, s.Segments, len(errs), len(garbage)})
	} else {
		if len(errs) == 0 {
			fmt.Fprintf(out, "backup %s: %d segments, %s: no problems found\n", m.ID, s.Segments, size(s.StoredBytes))
		}
		if len(garbage) > 0 {
			fmt.Fprintf(out, "note: %d objects in the repository are not part of any backup (left by interrupted runs, or stored by a backup running now since its last checkpoint), e.g. %s\n", len(garbage), garbage[0])
		}
	}
	if len(errs) > 0 {
		return damageError{len(errs)}
	}
	return nil
}

func maxOneArg(cmd *cobra.Command, args []string) error {
	if len(args) > 1 {
		return usageError{fmt.Errorf("%q takes at most one backup id, got %q", cmd.CommandPath(), args)}
	}
	return nil
}

// size formats a byte count for people.
func size(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
