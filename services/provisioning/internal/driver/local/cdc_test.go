package local

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
)

// The init file creates the cdc account with exactly the capture's and the
// sync jobs' grants, and none for an instance created before CDC existed.
func TestInitSQLCDCAccount(t *testing.T) {
	spec := testSpec("/tmp/cnp-x", driver.EngineMySQL, 3400)
	spec.CDC = driver.Credentials{Username: "canopy_cdc", Password: "cdc-secret-password"}
	sql := initSQL(spec)
	for _, want := range []string{
		"CREATE USER IF NOT EXISTS 'canopy_cdc'@'%' IDENTIFIED BY 'cdc-secret-password';\n",
		"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, REPLICATION SLAVE, BINLOG MONITOR, SLAVE MONITOR, BINLOG REPLAY ON *.* TO 'canopy_cdc'@'%';\n",
	} {
		if !strings.Contains(sql, want) {
			t.Errorf("init SQL lacks %q:\n%s", want, sql)
		}
	}
	spec.CDC = driver.Credentials{}
	if sql := initSQL(spec); strings.Contains(sql, "cdc") {
		t.Errorf("init SQL without a cdc account mentions one:\n%s", sql)
	}
}

// A spec without a cdc account (an instance created before CDC) keeps the
// fingerprint its node.json was written with: the field is left out, not
// marshalled empty.
func TestFingerprintWithoutCDC(t *testing.T) {
	spec := testSpec("/tmp/cnp-x", driver.EngineMySQL, 3400)
	spec.CDC = driver.Credentials{}
	before := fingerprint(spec)
	if b, _ := json.Marshal(spec); strings.Contains(string(b), "CDC") {
		t.Errorf("a spec without cdc account marshals it: %s", b)
	}
	spec.CDC = driver.Credentials{Username: "canopy_cdc", Password: "a"}
	withCDC := fingerprint(spec)
	spec.CDC.Password = "b"
	if fingerprint(spec) != withCDC {
		t.Error("the cdc password changes the fingerprint")
	}
	if before == withCDC {
		t.Error("the cdc account does not change the fingerprint")
	}
}
