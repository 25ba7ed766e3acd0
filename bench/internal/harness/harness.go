// Package harness holds what the benchmark harnesses under bench/ share:
// running a client as a child process and measuring it (wall time, CPU
// time, peak RSS), starting and stopping broker processes that announce
// themselves on stdout, serving franz-go's kfake as such a process, checking
// a ktape backup's manifest, parsing matrix flags, and the small helpers
// their result lines and tables need.
package harness

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ktape/ktape/bench/source"
)

// Usage is what a finished child process cost: its life (start to exit,
// start-up included), the user and system CPU time of all its threads,
// and its peak resident set (getrusage of the child).
type Usage struct {
	Wall     time.Duration
	User     float64 // seconds
	Sys      float64 // seconds
	MaxRSSMB float64 // MiB
}

// CPU is user plus system time, in seconds.
func (u Usage) CPU() float64 { return u.User + u.Sys }

// LaunchPkg is the launcher Measure runs clients through.
const LaunchPkg = "github.com/ktape/ktape/bench/internal/launch"

// Launcher builds LaunchPkg into dir and returns the binary's path.
func Launcher(dir string) (string, error) {
	bin := filepath.Join(dir, "launch")
	if msg, err := GoBuild(bin, LaunchPkg); err != nil {
		return "", fmt.Errorf("build %s: %v\n%s", LaunchPkg, err, msg)
	}
	return bin, nil
}

// Measure runs cmd to its end and returns what it cost, and the error
// cmd.Run would have returned. With a launcher (see Launcher) cmd runs
// under it and the figures are the launcher's report on it: its wall time
// from start to exit, start-up included, and its own getrusage. Without
// one, cmd runs as this process's child, and its peak RSS is at least this
// process's: on Linux exec takes the high-water mark of the memory it
// replaces, which os/exec shares with the parent (see the launcher's doc).
func Measure(launcher string, cmd *exec.Cmd) (Usage, error) {
	return MeasureNotify(launcher, cmd, nil)
}

// MeasureNotify is Measure, sending the started process's id on started
// (when not nil; it must have room for it): with a launcher, the
// launcher's.
func MeasureNotify(launcher string, cmd *exec.Cmd, started chan<- int) (Usage, error) {
	var u Usage
	if launcher == "" {
		start := time.Now()
		err := cmd.Start()
		if err == nil {
			if started != nil {
				started <- cmd.Process.Pid
			}
			err = cmd.Wait()
		}
		u.Wall = time.Since(start)
		if cmd.ProcessState != nil {
			if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
				u.User = time.Duration(ru.Utime.Nano()).Seconds()
				u.Sys = time.Duration(ru.Stime.Nano()).Seconds()
				u.MaxRSSMB = float64(ru.Maxrss) / 1024
			}
		}
		return u, err
	}
	if cmd.Err != nil {
		return u, cmd.Err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return u, err
	}
	defer pr.Close()
	cmd.Args = append([]string{launcher, cmd.Path}, cmd.Args[1:]...)
	cmd.Path = launcher
	cmd.ExtraFiles = []*os.File{pw} // fd 3
	err = cmd.Start()
	pw.Close()
	if err != nil {
		return u, err
	}
	if started != nil {
		started <- cmd.Process.Pid
	}
	line, rerr := io.ReadAll(pr)
	err = cmd.Wait()
	var r struct {
		Seconds   float64 `json:"seconds"`
		User      float64 `json:"user_s"`
		Sys       float64 `json:"sys_s"`
		MaxRSSKiB int64   `json:"max_rss_kib"`
		Error     string  `json:"error"`
	}
	if rerr == nil {
		rerr = json.Unmarshal(line, &r)
	}
	if rerr != nil {
		return u, errors.Join(err, fmt.Errorf("launcher report %q: %w", line, rerr))
	}
	if r.Error != "" {
		return u, errors.Join(err, errors.New(r.Error))
	}
	u.Wall = time.Duration(r.Seconds * float64(time.Second))
	u.User, u.Sys, u.MaxRSSMB = r.User, r.Sys, float64(r.MaxRSSKiB)/1024
	return u, err
}

// Shuffled returns a copy of items in an order fixed by (round, conf):
// each round of a matrix runs its clients in its own order, so that every
// client meets the machine in each of its states.
func Shuffled(items []string, round, conf int) []string {
	out := slices.Clone(items)
	rng := rand.New(rand.NewPCG(uint64(round), uint64(conf)))
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// SyncWriter serialises writes from a harness and the goroutines os/exec
// starts to copy its children's output.
type SyncWriter struct {
	mu sync.Mutex
	W  io.Writer
}

func (s *SyncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.W.Write(p)
}

// GoBuild builds pkg into out with the go command ($GO, or go on PATH),
// returning its output.
func GoBuild(out, pkg string) (string, error) {
	g := "go"
	if e := os.Getenv("GO"); e != "" {
		g = e
	}
	msg, err := exec.Command(g, "build", "-o", out, pkg).CombinedOutput()
	return string(msg), err
}

// KtapePkg is the ktape command's package.
const KtapePkg = "github.com/ktape/ktape/cmd/ktape"

// Ktape returns bin if it is set, else builds KtapePkg into dir and returns
// the binary's path; progress goes to log.
func Ktape(bin, dir string, log io.Writer) (string, error) {
	if bin != "" {
		return bin, nil
	}
	bin = filepath.Join(dir, "ktape")
	fmt.Fprintf(log, "building %s\n", KtapePkg)
	if msg, err := GoBuild(bin, KtapePkg); err != nil {
		return "", fmt.Errorf("build ktape (or pass -ktape-bin): %v\n%s", err, msg)
	}
	return bin, nil
}

// Kcat finds the kcat executable named bin.
func Kcat(bin string) (string, error) {
	path, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("-impl kcat: %w (install Debian's kcat, or leave kcat out of -impl)", err)
	}
	return path, nil
}

// ParseNames reads a comma-separated list of names, each one of allowed.
func ParseNames(flagName, s string, allowed []string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(allowed, f) {
			return nil, fmt.Errorf("-%s %q: %q is not one of %s", flagName, s, f, strings.Join(allowed, ", "))
		}
		out = append(out, f)
	}
	return out, nil
}

// ParsePartitions reads a comma-separated list of partition counts.
func ParsePartitions(flagName, s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 10_000 {
			return nil, fmt.Errorf("-%s %q: want integers from 1 to 10000, comma-separated (e.g. -%s 1,8)", flagName, s, flagName)
		}
		out = append(out, n)
	}
	return out, nil
}

// ParseSizes reads a comma-separated list of sizes (source.ParseSize).
func ParseSizes(flagName, s string) ([]int64, error) {
	var out []int64
	for _, f := range strings.Split(s, ",") {
		n, err := source.ParseSize("-"+flagName, f)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// FileSize is the size of the file at path, 0 if it cannot be read.
func FileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// DirSize sums the sizes of the files under dir.
func DirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// LastLine is the last line of s, without its newline.
func LastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// LastLines joins the last n lines of s with " | ", for error messages.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// Round rounds x to decimals places.
func Round(x float64, decimals int) float64 {
	p := math.Pow(10, float64(decimals))
	return math.Round(x*p) / p
}

// Median of values (0 for none); values is not changed.
func Median(values []float64) float64 {
	if len(values) == 0 {
		return 0
	}
	v := slices.Sorted(slices.Values(values))
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// MedianOf is the median of f over rs.
func MedianOf[T any](rs []T, f func(T) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	return Median(v)
}

// SizeString prints a byte count in the largest binary unit that divides
// it, for progress lines and tables.
func SizeString(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d %s", n/u.size, u.name)
		}
	}
	if n >= 1<<30 {
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%d B", n)
}
