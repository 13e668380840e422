// Package reset returns a machine to the state before Canopy first ran on
// it: it stops the all-in-one platform recorded in the state directory, every
// process working in the state directory (the node servers the local driver
// started), drops the services' databases and removes the state directory.
// It is what `canopy reset` (`make reset`) runs. It knows nothing of the
// services: the caller names the databases (derived from the configured
// prefix, never a LIKE pattern that could match another setup's or a test's
// databases). It does not touch Kafka topics on a real broker or keys in the
// shared Redis.
package reset

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql" // the MySQL driver for database/sql

	"github.com/canopy-platform/canopy/services/allinone/internal/pidfile"
)

// Config says what belongs to one Canopy setup.
type Config struct {
	// StateDir is the state directory (.canopy).
	StateDir string
	// MySQLDSN is the server the services' databases live on (no database).
	MySQLDSN string
	// Databases are the exact names of the services' databases.
	Databases []string
	// PlatformTimeout bounds the all-in-one's own shutdown after SIGTERM
	// (it stops its services one by one); 2 minutes when zero.
	PlatformTimeout time.Duration
	// NodeTimeout bounds a node server's shutdown after SIGTERM before it is
	// killed; 30 seconds when zero.
	NodeTimeout time.Duration
}

// Confirmation is the word an operator types to go on.
const Confirmation = "reset"

// dbName is what a database name may be here: it is quoted into DROP
// DATABASE, so nothing that could leave the backquotes.
var dbName = regexp.MustCompile(`^[A-Za-z0-9_$]+$`)

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.StateDir) == "" {
		errs = append(errs, errors.New("state dir is required"))
	}
	if c.MySQLDSN == "" {
		errs = append(errs, errors.New("mysql dsn is required"))
	}
	for _, d := range c.Databases {
		if !dbName.MatchString(d) {
			errs = append(errs, fmt.Errorf("database name %q: only letters, digits, _ and $", d))
		}
	}
	return errors.Join(errs...)
}

// Plan is what a reset would do, found by Inspect.
type Plan struct {
	// StateDir is the absolute state directory.
	StateDir string
	// StateDirExists is whether it exists.
	StateDirExists bool
	// Platform is the running all-in-one recorded in the state directory.
	Platform *pidfile.Process
	// Processes work in the state directory.
	Processes []Proc
	// Databases are the configured databases that exist.
	Databases []string
}

// Empty reports whether there is nothing to reset.
func (p Plan) Empty() bool {
	return !p.StateDirExists && p.Platform == nil && len(p.Processes) == 0 && len(p.Databases) == 0
}

// Describe writes what the reset would do, one line each.
func (p Plan) Describe(w io.Writer) {
	if p.Platform != nil {
		fmt.Fprintf(w, "  stop the all-in-one platform (pid %d)\n", p.Platform.PID)
	}
	for _, pr := range p.Processes {
		fmt.Fprintf(w, "  stop %s\n", pr)
	}
	for _, d := range p.Databases {
		fmt.Fprintf(w, "  drop database %s\n", d)
	}
	if p.StateDirExists {
		fmt.Fprintf(w, "  remove %s\n", p.StateDir)
	}
}

// Reset runs a whole reset: it inspects, prints the plan, asks for the
// confirmation on in unless force, and executes. out receives what it does.
func Reset(ctx context.Context, cfg Config, force bool, in io.Reader, out io.Writer) error {
	plan, err := Inspect(ctx, cfg)
	if err != nil {
		return err
	}
	if plan.Empty() {
		fmt.Fprintf(out, "Nothing to reset: no Canopy process, database (%s) or state directory (%s).\n",
			strings.Join(cfg.Databases, ", "), plan.StateDir)
		return nil
	}
	fmt.Fprintln(out, "This removes every instance's data and every stored credential, key and event of this Canopy:")
	plan.Describe(out)
	if !force {
		fmt.Fprintf(out, "Type %q to go on: ", Confirmation)
		line, _ := bufio.NewReader(in).ReadString('\n')
		if strings.TrimSpace(line) != Confirmation {
			fmt.Fprintln(out, "\nNot confirmed; nothing changed.")
			return ErrNotConfirmed
		}
	}
	return Execute(ctx, cfg, plan, out)
}

// ErrNotConfirmed is returned by Reset when the operator did not confirm.
var ErrNotConfirmed = errors.New("reset not confirmed")

// Inspect finds what a reset would stop, drop and remove.
func Inspect(ctx context.Context, cfg Config) (Plan, error) {
	if err := cfg.Validate(); err != nil {
		return Plan{}, fmt.Errorf("reset: %w", err)
	}
	dir, err := resolve(cfg.StateDir)
	if err != nil {
		return Plan{}, err
	}
	plan := Plan{StateDir: dir}
	if _, err := os.Stat(dir); err == nil {
		plan.StateDirExists = true
	} else if !errors.Is(err, os.ErrNotExist) {
		return Plan{}, fmt.Errorf("state dir: %w", err)
	}
	if p, ok, err := pidfile.Read(dir); err != nil {
		return Plan{}, err
	} else if ok {
		plan.Platform = &p
	}
	if plan.Processes, err = under(dir); err != nil {
		return Plan{}, err
	}
	if plan.Platform != nil {
		plan.Processes = without(plan.Processes, plan.Platform.PID)
	}
	db, err := sql.Open("mysql", cfg.MySQLDSN)
	if err != nil {
		return Plan{}, fmt.Errorf("mysql: %w", err)
	}
	defer db.Close()
	if plan.Databases, err = existing(ctx, db, cfg.Databases); err != nil {
		return Plan{}, err
	}
	return plan, nil
}

// Execute carries plan out: the platform first (its node supervisor would
// restart the nodes stopped before it), then every process still working in
// the state directory, the databases and the directory. It ends with a
// check that no process is left.
func Execute(ctx context.Context, cfg Config, plan Plan, out io.Writer) error {
	if plan.Platform != nil {
		began := time.Now()
		if err := stop(ctx, []pidfile.Process{*plan.Platform}, orDefault(cfg.PlatformTimeout, 2*time.Minute)); err != nil {
			return fmt.Errorf("stop the all-in-one platform (pid %d): %w", plan.Platform.PID, err)
		}
		fmt.Fprintf(out, "stopped the all-in-one platform (pid %d) in %s\n", plan.Platform.PID, time.Since(began).Round(time.Millisecond))
	}
	// Found again: the platform may have started nodes since Inspect.
	procs, err := under(plan.StateDir)
	if err != nil {
		return err
	}
	if len(procs) > 0 {
		ids := make([]pidfile.Process, len(procs))
		for i, p := range procs {
			ids[i] = p.Process
		}
		began := time.Now()
		if err := stop(ctx, ids, orDefault(cfg.NodeTimeout, 30*time.Second)); err != nil {
			return fmt.Errorf("stop the processes in %s: %w", plan.StateDir, err)
		}
		for _, p := range procs {
			fmt.Fprintf(out, "stopped %s\n", p)
		}
		fmt.Fprintf(out, "stopped %d processes in %s\n", len(procs), time.Since(began).Round(time.Millisecond))
	}
	if len(plan.Databases) > 0 {
		db, err := sql.Open("mysql", cfg.MySQLDSN)
		if err != nil {
			return fmt.Errorf("mysql: %w", err)
		}
		defer db.Close()
		for _, d := range plan.Databases {
			if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+d+"`"); err != nil {
				return fmt.Errorf("drop database %s: %w", d, err)
			}
			fmt.Fprintf(out, "dropped database %s\n", d)
		}
	}
	if err := os.RemoveAll(plan.StateDir); err != nil {
		return fmt.Errorf("remove state dir: %w", err)
	}
	if plan.StateDirExists {
		fmt.Fprintf(out, "removed %s\n", plan.StateDir)
	}
	// A process that came up after the sweep would have kept files open in
	// a directory that is now gone: say so rather than report a clean slate.
	if left, err := under(plan.StateDir); err != nil {
		return err
	} else if len(left) > 0 {
		return fmt.Errorf("processes started in %s during the reset: %v", plan.StateDir, left)
	}
	fmt.Fprintln(out, "Canopy is reset.")
	return nil
}

// existing returns the names in want that exist on the server, in want's
// order.
func existing(ctx context.Context, db *sql.DB, want []string) ([]string, error) {
	if len(want) == 0 {
		return nil, nil
	}
	args := make([]any, len(want))
	for i, w := range want {
		args[i] = w
	}
	q := "SELECT schema_name FROM information_schema.schemata WHERE schema_name IN (?" + strings.Repeat(",?", len(want)-1) + ")"
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	defer rows.Close()
	found := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("list databases: %w", err)
		}
		found[n] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	var out []string
	for _, w := range want {
		if found[w] {
			out = append(out, w)
		}
	}
	return out, nil
}

// resolve makes dir absolute and, when it exists, free of symbolic links,
// as /proc shows working directories.
func resolve(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("state dir: %w", err)
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		return r, nil
	}
	return abs, nil
}

func without(procs []Proc, pid int) []Proc {
	out := procs[:0:0]
	for _, p := range procs {
		if p.PID != pid {
			out = append(out, p)
		}
	}
	return out
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
