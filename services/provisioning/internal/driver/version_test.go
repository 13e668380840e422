package driver

import "testing"

func TestParseVersion(t *testing.T) {
	tests := []struct {
		name   string
		engine Engine
		out    string
		want   EngineVersion
		label  string
		series string
	}{
		{"mariadb debian", EngineMySQL, "mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64 (Debian 12)\n",
			EngineVersion{EngineMySQL, "mariadb", "10.11.19"}, "mariadb-10.11.19", "10.11"},
		{"mariadb upstream", EngineMySQL, "mariadbd  Ver 11.4.5-MariaDB for Linux on x86_64 (MariaDB Server)",
			EngineVersion{EngineMySQL, "mariadb", "11.4.5"}, "mariadb-11.4.5", "11.4"},
		{"mariadb old mysqld name", EngineMySQL, "mysqld  Ver 10.6.18-MariaDB-0ubuntu0.22.04.1 for debian-linux-gnu on x86_64 (Ubuntu 22.04)",
			EngineVersion{EngineMySQL, "mariadb", "10.6.18"}, "mariadb-10.6.18", "10.6"},
		{"mysql", EngineMySQL, "/usr/sbin/mysqld  Ver 8.4.3 for Linux on x86_64 (MySQL Community Server - GPL)",
			EngineVersion{EngineMySQL, "mysql", "8.4.3"}, "mysql-8.4.3", "8.4"},
		{"redis debian", EngineRedis, "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=d81b8ff71cfb150e\n",
			EngineVersion{EngineRedis, "redis", "7.0.15"}, "redis-7.0.15", "7.0"},
		{"redis upstream", EngineRedis, "Redis server v=7.4.1 sha=00000000:0 malloc=libc bits=64 build=a1b2",
			EngineVersion{EngineRedis, "redis", "7.4.1"}, "redis-7.4.1", "7.4"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseVersion(tc.engine, tc.out)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want || got.Label() != tc.label || got.Series() != tc.series {
				t.Fatalf("ParseVersion = %+v (%s, %s), want %+v (%s, %s)", got, got.Label(), got.Series(), tc.want, tc.label, tc.series)
			}
		})
	}
}

func TestParseVersionRefusesGarbage(t *testing.T) {
	for _, tc := range []struct {
		engine Engine
		out    string
	}{
		{EngineMySQL, ""},
		{EngineMySQL, "Redis server v=7.0.15 sha=00000000:0"},
		{EngineRedis, "mariadbd  Ver 10.11.19-MariaDB"},
		{EngineRedis, "Redis server v=7 sha=0"},
		{"rabbitmq", "3.13.0"},
	} {
		if got, err := ParseVersion(tc.engine, tc.out); err == nil {
			t.Errorf("ParseVersion(%s, %q) = %+v, want an error", tc.engine, tc.out, got)
		}
	}
}

func TestSeries(t *testing.T) {
	for in, want := range map[string]string{
		"10.11": "10.11", "10.11.19": "10.11", "mariadb-10.11": "10.11", "7.0": "7.0", "7": "", "": "", "8.0-rc": "", "redis-7.0": "",
	} {
		if got := Series(in); got != want {
			t.Errorf("Series(%q) = %q, want %q", in, got, want)
		}
	}
}
