package driver

import (
	"context"
	"fmt"
	"regexp"
	"strings"
)

// EngineVersion is one engine build a driver can run: the engine's own
// flavour and full version, from which the catalog label ("mariadb-10.11.19",
// "redis-7.0.15") and the major.minor a user orders by ("10.11", "7.0")
// derive.
type EngineVersion struct {
	// Engine is Canopy's engine name (mysql, redis).
	Engine Engine `json:"engine"`
	// Flavor is the server's own product name: "mariadb", "mysql", "redis".
	Flavor string `json:"flavor"`
	// Version is the full server version, "10.11.19".
	Version string `json:"version"`
}

// Series is the major.minor a user orders by: "10.11" for 10.11.19.
func (v EngineVersion) Series() string { return Series(v.Version) }

// Label is the engine's own name of the build: "mariadb-10.11.19".
func (v EngineVersion) Label() string { return v.Flavor + "-" + v.Version }

// Versions is implemented by drivers that report what they can run. The
// local driver reads its binaries' --version once and caches it.
type Versions interface {
	// EngineVersions lists the engine builds the driver can run now; an
	// engine whose server is missing is left out.
	EngineVersions(ctx context.Context) []EngineVersion
}

// Series returns the major.minor of a version: "10.11" of "10.11.19", of
// "10.11" and of the catalog's older "mariadb-10.11"; "" when v has no
// major.minor.
func Series(v string) string {
	v = strings.TrimPrefix(v, "mariadb-")
	m := seriesPattern.FindStringSubmatch(v)
	if m == nil {
		return ""
	}
	return m[1]
}

var seriesPattern = regexp.MustCompile(`^(\d+\.\d+)(\.\d+)?$`)

// Patterns of the servers' --version output. mariadbd prints
// "mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64
// (Debian 12)" (mysqld: "mysqld  Ver 8.4.3 for Linux on x86_64 (MySQL
// Community Server - GPL)"); redis-server prints "Redis server v=7.0.15
// sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=...".
var (
	mysqlVersionPattern = regexp.MustCompile(`\bVer\s+(?:Distrib\s+)?(\d+\.\d+\.\d+)(-[0-9A-Za-z.+~_-]*)?`)
	redisVersionPattern = regexp.MustCompile(`\bv=(\d+\.\d+\.\d+)\b`)
)

// ParseVersion reads a server's --version output: MariaDB or MySQL for
// EngineMySQL, Redis for EngineRedis.
func ParseVersion(e Engine, out string) (EngineVersion, error) {
	switch e {
	case EngineMySQL:
		m := mysqlVersionPattern.FindStringSubmatch(out)
		if m == nil {
			return EngineVersion{}, fmt.Errorf("no MySQL server version in %q", out)
		}
		flavor := "mysql"
		if strings.Contains(strings.ToLower(m[2]), "mariadb") || strings.Contains(strings.ToLower(out), "mariadb") {
			flavor = "mariadb"
		}
		return EngineVersion{Engine: e, Flavor: flavor, Version: m[1]}, nil
	case EngineRedis:
		m := redisVersionPattern.FindStringSubmatch(out)
		if m == nil {
			return EngineVersion{}, fmt.Errorf("no Redis server version in %q", out)
		}
		return EngineVersion{Engine: e, Flavor: "redis", Version: m[1]}, nil
	}
	return EngineVersion{}, fmt.Errorf("unknown engine %q", e)
}
