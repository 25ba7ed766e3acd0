package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/ktape/ktape/backup"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/restore"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// WorkersOptions are the flags that make a backup or restore one of a
// group of workers sharing it through a Kafka group.
type WorkersOptions struct {
	Group            string
	Name             string
	InstanceID       string
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration
}

// AddFlags registers the workers flags on fs; what is the command's word
// for the work (backup, restore); named adds --worker-name, for a command
// whose workers write under their names in the repository.
func (o *WorkersOptions) AddFlags(fs *pflag.FlagSet, what string, named bool) {
	fs.StringVar(&o.Group, "workers-group", "", "share the "+what+" with every process started with this group `NAME`: Kafka's group protocol splits the partitions between them")
	if named {
		fs.StringVar(&o.Name, "worker-name", "", "this worker's name in the repository, unique in its group (default HOST-PID-RANDOM)")
	}
	fs.StringVar(&o.InstanceID, "worker-instance-id", "", "a static group member id (group.instance.id): a worker restarted within the session timeout keeps its partitions without a rebalance")
	fs.DurationVar(&o.SessionTimeout, "worker-session-timeout", 30*time.Second, "how long the group waits for a silent worker before giving its partitions to others")
	fs.DurationVar(&o.RebalanceTimeout, "worker-rebalance-timeout", time.Minute, "how long workers have to checkpoint and rejoin when partitions move")
}

// check validates the flags; a group's timeouts must be positive.
func (o *WorkersOptions) check(gopts GlobalOptions) error {
	if o.Group == "" {
		switch {
		case o.Name != "":
			return usageError{fmt.Errorf("%s %q: only with --workers-group", gopts.Sources.of("worker-name"), o.Name)}
		case o.InstanceID != "":
			return usageError{fmt.Errorf("%s %q: only with --workers-group", gopts.Sources.of("worker-instance-id"), o.InstanceID)}
		}
		return nil
	}
	if o.Name != "" && !repo.ValidWorkerName(o.Name) {
		return usageError{fmt.Errorf("%s %q: letters, digits, '.', '_' and '-', at most 128", gopts.Sources.of("worker-name"), o.Name)}
	}
	if o.SessionTimeout <= 0 || o.RebalanceTimeout <= 0 {
		return usageError{fmt.Errorf("%s and %s must be positive", gopts.Sources.of("worker-session-timeout"), gopts.Sources.of("worker-rebalance-timeout"))}
	}
	return nil
}

// restoreWorkers is what restore.RunWorkers takes.
func (o *WorkersOptions) restoreWorkers() restore.Workers {
	return restore.Workers{Group: o.Group, InstanceID: o.InstanceID, SessionTimeout: o.SessionTimeout, RebalanceTimeout: o.RebalanceTimeout}
}

// backupWorkers is what backup.Options.Workers takes; nil without a group.
func (o *WorkersOptions) backupWorkers() *backup.Workers {
	if o.Group == "" {
		return nil
	}
	return &backup.Workers{Group: o.Group, Name: o.Name, InstanceID: o.InstanceID, SessionTimeout: o.SessionTimeout, RebalanceTimeout: o.RebalanceTimeout}
}

func newBackupFinalizeCommand(gopts *GlobalOptions) *cobra.Command {
	var ropts RepoOptions
	var group string
	cmd := &cobra.Command{
		Use:   "finalize --workers-group NAME",
		Short: "Write the manifest of a backup shared by a workers group",
		Long: `Write the manifest of the backup that the workers of --workers-group
share, once every partition of it reached its snapshot end. The workers do
this themselves when the last one finishes; finalize is for when they were
stopped before they could. A run with partitions left fails (exit 1) and
says how many: start workers with the same group to finish them.

` + exitStatusHelp(),
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBackupFinalize(cmd.Context(), ropts, group, *gopts, cmd.OutOrStdout())
		},
	}
	ropts.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&group, "workers-group", "", "the group `NAME` the workers were started with")
	return cmd
}

func runBackupFinalize(ctx context.Context, ropts RepoOptions, group string, gopts GlobalOptions, out io.Writer) error {
	if group == "" {
		return usageError{fmt.Errorf("no group: give --workers-group")}
	}
	r, err := ropts.open(ctx)
	if err != nil {
		return err
	}
	m, err := backup.Finalize(ctx, r, group, ktapeVersion())
	if err != nil {
		return err
	}
	if gopts.JSON {
		return json.NewEncoder(out).Encode(struct {
			MessageType string `json:"message_type"`
			Backup      string `json:"backup"`
			Group       string `json:"workers_group"`
		}{"backup_finalized", m.ID, group})
	}
	fmt.Fprintf(out, "backup %s of workers group %s: manifest written\n", m.ID, group)
	return nil
}
