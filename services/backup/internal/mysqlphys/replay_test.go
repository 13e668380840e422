package mysqlphys

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// Output of mariadb-binlog for a transaction, a DDL and a transaction.
const binlogText = `# at 1094
#261203 15:16:41 server id 1  end_log_pos 1136 CRC32 0xe537b3cd 	GTID 0-1-6 trans
/*M!100001 SET @@session.gtid_seq_no=6*//*!*/;
START TRANSACTION
/*!*/;
# at 1136
#261203 15:16:41 server id 1  end_log_pos 1232 CRC32 0xc41d989b 	Query	thread_id=10	exec_time=0	error_code=0	xid=0
insert into shop.t values (3,'c')
/*!*/;
# at 1232
#261203 15:16:41 server id 1  end_log_pos 1263 CRC32 0x3e1850c3 	Xid = 101
COMMIT/*!*/;
# at 1263
#261203 15:16:41 server id 1  end_log_pos 1305 CRC32 0xacf69615 	GTID 0-1-7 ddl
/*M!100001 SET @@session.gtid_seq_no=7*//*!*/;
# at 1305
#261203 15:16:41 server id 1  end_log_pos 1403 CRC32 0x458e2021 	Query	thread_id=10	exec_time=0	error_code=0	xid=102
create table shop.u(a int)
/*!*/;
# at 1403
#261203 15:16:41 server id 1  end_log_pos 1445 CRC32 0xe04997ad 	GTID 0-1-8 trans
/*M!100001 SET @@session.gtid_seq_no=8*//*!*/;
START TRANSACTION
/*!*/;
# at 1445
#261203 15:16:41 server id 1  end_log_pos 1537 CRC32 0x9757352a 	Query	thread_id=10	exec_time=0	error_code=0	xid=0
insert into shop.u values (1)
/*!*/;
DELIMITER ;
# End of log file
ROLLBACK /* added by mysqlbinlog */;
`

func TestTxTracker(t *testing.T) {
	cases := []struct {
		name     string
		stop     string
		reached  string
		applied  int
		cut      bool
		lastLine string
	}{
		// 0-1-8 has no COMMIT in the output (a stop time inside it): the
		// appended ROLLBACK undoes it.
		{name: "no stop", reached: "0-1-7", applied: 2, lastLine: "ROLLBACK /* added by mysqlbinlog */;"},
		{name: "stop at a DDL", stop: "0-1-7", reached: "0-1-7", applied: 2, cut: true, lastLine: "/*!*/;"},
		{name: "stop at a transaction", stop: "0-1-6", reached: "0-1-6", applied: 1, cut: true, lastLine: "COMMIT/*!*/;"},
		{name: "stop GTID missing", stop: "0-1-5", reached: "0-1-5", applied: 0, cut: true, lastLine: "# at 1094"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stop, err := parsePos(c.stop)
			if err != nil {
				t.Fatal(err)
			}
			pos, _ := parsePos("0-1-5")
			tr := &txTracker{pos: pos, stop: stop}
			var out bytes.Buffer
			err = tr.copy(&out, strings.NewReader(binlogText))
			if cut := errors.Is(err, errCut); cut != c.cut || (err != nil && !cut) {
				t.Fatalf("copy: %v, want cut %v", err, c.cut)
			}
			lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
			if got := tr.pos.String(); got != c.reached || tr.applied != c.applied || lines[len(lines)-1] != c.lastLine {
				t.Fatalf("reached %s after %d, last line %q; want %s after %d, %q", got, tr.applied, lines[len(lines)-1],
					c.reached, c.applied, c.lastLine)
			}
		})
	}
}

func TestOnlyUnreachedStart(t *testing.T) {
	for in, want := range map[string]bool{
		"ERROR: Binary logs never reached expected GTID state of 5-9-3":                                   true,
		"WARNING: x\nERROR: Binary logs never reached expected GTID state of 5-9-3":                       true,
		"ERROR: Binary logs never reached expected GTID state of 5-9-3\nERROR: Could not read entry at 4": false,
		"": false,
	} {
		if got := onlyUnreachedStart(in); got != want {
			t.Errorf("onlyUnreachedStart(%q) = %v", in, got)
		}
	}
}
