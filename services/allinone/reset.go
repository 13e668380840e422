package allinone

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
)

// ResetOptions tune Reset.
type ResetOptions struct {
	// Force skips the confirmation.
	Force bool
	// PlatformTimeout bounds the all-in-one's own shutdown after SIGTERM
	// (it stops its services one by one); 2 minutes when zero.
	PlatformTimeout time.Duration
	// NodeTimeout bounds a node server's shutdown after SIGTERM before it
	// is killed; 30 seconds when zero.
	NodeTimeout time.Duration
}

// ResetConfirmation is the word an operator types to go on.
const ResetConfirmation = "reset"

// ErrResetNotConfirmed is returned by Reset when the operator did not
// confirm.
var ErrResetNotConfirmed = errors.New("reset not confirmed")

// dbName is what a database name may be here: it is quoted into DROP
// DATABASE, so nothing that could leave the backquotes.
var dbName = regexp.MustCompile(`^[A-Za-z0-9_$]+$`)

// resetPlan is what a reset would do.
type resetPlan struct {
	stateDir       string // absolute
	stateDirExists bool
	platform       *procID     // the running all-in-one recorded in the state dir
	procs          []stateProc // working in the state dir
	databases      []string    // of cfg.Databases(), those that exist
}

func (p resetPlan) empty() bool {
	return !p.stateDirExists && p.platform == nil && len(p.procs) == 0 && len(p.databases) == 0
}

func (p resetPlan) describe(w io.Writer) {
	if p.platform != nil {
		fmt.Fprintf(w, "  stop the platform (pid %d: the all-in-one, or split mode's script)\n", p.platform.pid)
	}
	for _, pr := range p.procs {
		fmt.Fprintf(w, "  stop %s\n", pr)
	}
	for _, d := range p.databases {
		fmt.Fprintf(w, "  drop database %s\n", d)
	}
	if p.stateDirExists {
		fmt.Fprintf(w, "  remove %s\n", p.stateDir)
	}
}

// Reset returns the machine to where it was before this configuration of
// Canopy first ran (`canopy reset`, `make reset`): it stops the all-in-one
// recorded in the state directory, then every process working in the state
// directory (the node servers the local driver started), drops exactly the
// services' databases of cfg.DatabasePrefix (Databases; never a LIKE
// pattern that could match a test's or another setup's) and removes the
// state directory. It prints the plan to out and, unless opts.Force, goes
// on only when the operator types ResetConfirmation on in. It does not
// touch a real Kafka's topics or keys in the shared Redis.
func Reset(ctx context.Context, cfg Config, opts ResetOptions, in io.Reader, out io.Writer) error {
	plan, err := inspectReset(ctx, cfg)
	if err != nil {
		return err
	}
	if plan.empty() {
		fmt.Fprintf(out, "Nothing to reset: no Canopy process, no state directory %s, none of the databases %s.\n",
			plan.stateDir, strings.Join(cfg.Databases(), ", "))
		return nil
	}
	fmt.Fprintln(out, "This removes every instance's data and every stored credential, key and event of this Canopy:")
	plan.describe(out)
	if !opts.Force {
		fmt.Fprintf(out, "Type %q to go on: ", ResetConfirmation)
		var line string
		if in != nil {
			line, _ = bufio.NewReader(in).ReadString('\n')
		}
		if strings.TrimSpace(line) != ResetConfirmation {
			fmt.Fprintln(out, "\nNot confirmed; nothing changed.")
			return ErrResetNotConfirmed
		}
	}
	return executeReset(ctx, cfg, opts, plan, out)
}

func inspectReset(ctx context.Context, cfg Config) (resetPlan, error) {
	var errs []error
	if strings.TrimSpace(cfg.StateDir) == "" {
		errs = append(errs, errors.New("state_dir is required"))
	}
	if cfg.MySQLDSN == "" {
		errs = append(errs, errors.New("mysql_dsn is required"))
	}
	if !dbName.MatchString(cfg.DatabasePrefix) {
		errs = append(errs, fmt.Errorf("database_prefix %q: only letters, digits, _ and $", cfg.DatabasePrefix))
	}
	if err := errors.Join(errs...); err != nil {
		return resetPlan{}, fmt.Errorf("reset: %w", err)
	}
	dir, err := resolveDir(cfg.StateDir)
	if err != nil {
		return resetPlan{}, err
	}
	plan := resetPlan{stateDir: dir}
	if _, err := os.Stat(dir); err == nil {
		plan.stateDirExists = true
	} else if !errors.Is(err, os.ErrNotExist) {
		return resetPlan{}, fmt.Errorf("state dir: %w", err)
	}
	if p, ok, err := readPIDFile(dir); err != nil {
		return resetPlan{}, err
	} else if ok {
		plan.platform = &p
	}
	procs, err := procsUnder(dir)
	if err != nil {
		return resetPlan{}, err
	}
	for _, p := range procs {
		if plan.platform == nil || p.pid != plan.platform.pid {
			plan.procs = append(plan.procs, p)
		}
	}
	db, err := sql.Open("mysql", cfg.MySQLDSN)
	if err != nil {
		return resetPlan{}, fmt.Errorf("mysql: %w", err)
	}
	defer db.Close()
	if plan.databases, err = existingDatabases(ctx, db, cfg.Databases()); err != nil {
		return resetPlan{}, err
	}
	return plan, nil
}

// executeReset carries plan out: the platform first (its node supervisor
// would restart the nodes stopped before it), then every process still
// working in the state directory, the databases and the directory. It ends
// with a check that no process is left.
func executeReset(ctx context.Context, cfg Config, opts ResetOptions, plan resetPlan, out io.Writer) error {
	if plan.platform != nil {
		began := time.Now()
		if err := stopProcs(ctx, []procID{*plan.platform}, orDefault(opts.PlatformTimeout, 2*time.Minute)); err != nil {
			return fmt.Errorf("stop the platform (pid %d): %w", plan.platform.pid, err)
		}
		fmt.Fprintf(out, "stopped the platform (pid %d) in %s\n", plan.platform.pid, time.Since(began).Round(time.Millisecond))
	}
	// Found again: the platform may have started nodes since the plan.
	procs, err := procsUnder(plan.stateDir)
	if err != nil {
		return err
	}
	if len(procs) > 0 {
		ids := make([]procID, len(procs))
		for i, p := range procs {
			ids[i] = p.procID
		}
		began := time.Now()
		if err := stopProcs(ctx, ids, orDefault(opts.NodeTimeout, 30*time.Second)); err != nil {
			return fmt.Errorf("stop the processes in %s: %w", plan.stateDir, err)
		}
		for _, p := range procs {
			fmt.Fprintf(out, "stopped %s\n", p)
		}
		fmt.Fprintf(out, "stopped %d processes in %s\n", len(procs), time.Since(began).Round(time.Millisecond))
	}
	if len(plan.databases) > 0 {
		db, err := sql.Open("mysql", cfg.MySQLDSN)
		if err != nil {
			return fmt.Errorf("mysql: %w", err)
		}
		defer db.Close()
		for _, d := range plan.databases {
			if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+d+"`"); err != nil {
				return fmt.Errorf("drop database %s: %w", d, err)
			}
			fmt.Fprintf(out, "dropped database %s\n", d)
		}
	}
	if err := os.RemoveAll(plan.stateDir); err != nil {
		return fmt.Errorf("remove state dir: %w", err)
	}
	if plan.stateDirExists {
		fmt.Fprintf(out, "removed %s\n", plan.stateDir)
	}
	// A process that came up after the sweep would keep files open in a
	// directory that is now gone: say so rather than report a clean slate.
	left, err := procsUnder(plan.stateDir)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("processes started in %s during the reset: %v", plan.stateDir, left)
	}
	fmt.Fprintln(out, "Canopy is reset.")
	return nil
}

// existingDatabases returns the names in want that exist on the server, in
// want's order.
func existingDatabases(ctx context.Context, db *sql.DB, want []string) ([]string, error) {
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

// resolveDir makes dir absolute and, when it exists, free of symbolic
// links, as /proc shows working directories.
func resolveDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("state dir: %w", err)
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		return r, nil
	}
	return abs, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
