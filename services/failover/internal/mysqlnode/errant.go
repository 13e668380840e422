package mysqlnode

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"

	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

// maxErrant caps the transactions Errant lists; a longer tail is reported
// by its count.
const maxErrant = 1000

// Errant lists the transactions old has in its binary log that primary
// lacks: GTIDs whose (domain, server) pair goes further on old than in
// primary's @@gtid_binlog_state. Comparing pairs, not a domain's newest
// GTID, matters: after a failover the new primary continues the domain
// with its own server id and higher sequence numbers, which would hide an
// old primary's unreplicated tail. Empty when old's data is a prefix of
// the primary's. Each errant transaction is listed (read from old's newest
// binlogs), up to maxErrant.
func (m *Nodes) Errant(ctx context.Context, in topology.Instance, old, primary topology.Node) ([]string, error) {
	oldState, err := m.binlogState(ctx, in, old)
	if err != nil {
		return nil, err
	}
	primaryState, err := m.binlogState(ctx, in, primary)
	if err != nil {
		return nil, err
	}
	beyond := oldState.Beyond(primaryState)
	if len(beyond) == 0 {
		return nil, nil
	}
	list, err := m.listErrant(ctx, in, old, primaryState)
	if err != nil {
		// The pairs alone still say what is lost, by their newest GTID.
		m.logger(in, old).Warn("errant transactions not listed one by one", "err", err)
		out := make([]string, len(beyond))
		for i, g := range beyond {
			out[i] = g.String()
		}
		return out, nil
	}
	return list, nil
}

func (m *Nodes) binlogState(ctx context.Context, in topology.Instance, n topology.Node) (State, error) {
	conn, err := m.session(ctx, in, n)
	if err != nil {
		return nil, fmt.Errorf("binlog state of %s: %w", n.ID, err)
	}
	defer conn.Close()
	var s string
	if err := conn.QueryRowContext(ctx, "SELECT @@gtid_binlog_state").Scan(&s); err != nil {
		return nil, fmt.Errorf("binlog state of %s: %w", n.ID, err)
	}
	st, err := ParseState(s)
	if err != nil {
		return nil, fmt.Errorf("binlog state of %s: %w", n.ID, err)
	}
	return st, nil
}

// gtidInfo finds the GTID in a Gtid or Gtid_list event's Info
// ("BEGIN GTID 0-1-6", "GTID 0-1-7", "[0-1-5,0-2-3]").
var gtidInfo = regexp.MustCompile(`\d+-\d+-\d+`)

// listErrant reads old's binlogs from the newest back to the first whose
// starting state (its Gtid_list event) primary includes, and lists the GTID
// events primary lacks, oldest first.
func (m *Nodes) listErrant(ctx context.Context, in topology.Instance, old topology.Node, primary State) ([]string, error) {
	conn, err := m.session(ctx, in, old)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	files, err := binlogFiles(ctx, conn)
	if err != nil {
		return nil, err
	}
	var perFile [][]string
	total := 0
	for i := len(files) - 1; i >= 0; i-- {
		gtids, start, err := fileGTIDs(ctx, conn, files[i])
		if err != nil {
			return nil, err
		}
		var errant []string
		for _, g := range gtids {
			if !primary.Has(g) {
				errant = append(errant, g.String())
			}
		}
		perFile = append(perFile, errant)
		total += len(errant)
		if len(start.Beyond(primary)) == 0 {
			break
		}
	}
	out := make([]string, 0, min(total, maxErrant+1))
	for i := len(perFile) - 1; i >= 0; i-- {
		for _, g := range perFile[i] {
			if len(out) == maxErrant {
				return append(out, fmt.Sprintf("... and %d more", total-maxErrant)), nil
			}
			out = append(out, g)
		}
	}
	return out, nil
}

func binlogFiles(ctx context.Context, conn *sql.Conn) ([]string, error) {
	rows, err := conn.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return nil, fmt.Errorf("show binary logs: %w", err)
	}
	defer rows.Close()
	var files []string
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			return nil, fmt.Errorf("show binary logs: %w", err)
		}
		files = append(files, r["Log_name"])
	}
	return files, rows.Err()
}

// fileGTIDs returns the GTIDs logged in one binlog file and the state at
// its start.
func fileGTIDs(ctx context.Context, conn *sql.Conn, file string) ([]GTID, State, error) {
	rows, err := conn.QueryContext(ctx, "SHOW BINLOG EVENTS IN ?", file)
	if err != nil {
		return nil, nil, fmt.Errorf("binlog events of %s: %w", file, err)
	}
	defer rows.Close()
	start := State{}
	var gtids []GTID
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			return nil, nil, fmt.Errorf("binlog events of %s: %w", file, err)
		}
		switch r["Event_type"] {
		case "Gtid_list":
			for _, s := range gtidInfo.FindAllString(r["Info"], -1) {
				g, err := ParseGTID(s)
				if err != nil {
					return nil, nil, err
				}
				start[pair{g.Domain, g.Server}] = g.Seq
			}
		case "Gtid":
			s := gtidInfo.FindString(r["Info"])
			if s == "" {
				continue
			}
			g, err := ParseGTID(s)
			if err != nil {
				return nil, nil, err
			}
			gtids = append(gtids, g)
		}
	}
	return gtids, start, rows.Err()
}
