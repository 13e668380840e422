package engineadmin

import "testing"

func TestMySQLLabel(t *testing.T) {
	for in, want := range map[string]string{
		"10.11.19-MariaDB-0+deb12u1":     "mariadb-10.11.19",
		"10.11.19-MariaDB-0+deb12u1-log": "mariadb-10.11.19",
		"11.4.5-MariaDB":                 "mariadb-11.4.5",
		"8.4.3":                          "mysql-8.4.3",
	} {
		if got, err := MySQLLabel(in); err != nil || got != want {
			t.Errorf("MySQLLabel(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if got, err := MySQLLabel("MariaDB"); err == nil {
		t.Errorf("MySQLLabel(MariaDB) = %q, want an error", got)
	}
}

func TestRedisLabel(t *testing.T) {
	info := "# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\nredis_build_id:ae4d7c971a948f0\r\nredis_mode:standalone\r\n"
	if got, err := RedisLabel(info); err != nil || got != "redis-7.0.15" {
		t.Errorf("RedisLabel = %q, %v; want redis-7.0.15", got, err)
	}
	if got, err := RedisLabel("# Server\r\nredis_git_sha1:00000000\r\n"); err == nil {
		t.Errorf("RedisLabel without redis_version = %q, want an error", got)
	}
}
