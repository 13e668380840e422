package driver

import (
	"errors"
	"testing"
)

func validSpec() NodeSpec {
	return NodeSpec{
		InstanceID:  "inst-1",
		NodeID:      "inst-1-0",
		Engine:      EngineMySQL,
		Role:        RolePrimary,
		Port:        34000,
		DataRoot:    "/tmp/cnp",
		Admin:       Credentials{Username: "canopy-admin", Password: "secret-admin-1"},
		Monitor:     Credentials{Username: "canopy-monitor", Password: "secret-monitor-1"},
		Replication: Credentials{Username: "canopy-repl", Password: "secret-repl-1"},
		Database:    "app",
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*NodeSpec)
		field string // "" when valid
	}{
		{name: "valid mysql", edit: func(*NodeSpec) {}},
		{name: "valid redis needs no database", edit: func(s *NodeSpec) { s.Engine, s.Database = EngineRedis, "" }},
		{name: "node id with a path", edit: func(s *NodeSpec) { s.NodeID = "../x" }, field: "node_id"},
		{name: "empty instance", edit: func(s *NodeSpec) { s.InstanceID = "" }, field: "instance_id"},
		{name: "unknown engine", edit: func(s *NodeSpec) { s.Engine = "postgres" }, field: "engine"},
		{name: "unknown role", edit: func(s *NodeSpec) { s.Role = "leader" }, field: "role"},
		{name: "port zero", edit: func(s *NodeSpec) { s.Port = 0 }, field: "port"},
		{name: "port too high", edit: func(s *NodeSpec) { s.Port = 70000 }, field: "port"},
		{name: "negative memory", edit: func(s *NodeSpec) { s.MemoryLimitBytes = -1 }, field: "memory_limit_bytes"},
		{name: "user with space", edit: func(s *NodeSpec) { s.Admin.Username = "a b" }, field: "admin.username"},
		{name: "short password", edit: func(s *NodeSpec) { s.Monitor.Password = "short" }, field: "monitor.password"},
		{name: "password with quote", edit: func(s *NodeSpec) { s.Replication.Password = `abcdefgh"` }, field: "replication.password"},
		{name: "shared account", edit: func(s *NodeSpec) { s.Replication.Username = "canopy-admin" }, field: "credentials"},
		{name: "valid mysql with cdc", edit: func(s *NodeSpec) { s.CDC = Credentials{Username: "canopy-cdc", Password: "secret-cdc-1"} }},
		{name: "cdc short password", edit: func(s *NodeSpec) { s.CDC = Credentials{Username: "canopy-cdc", Password: "short"} }, field: "cdc.password"},
		{name: "cdc shares monitor", edit: func(s *NodeSpec) { s.CDC = Credentials{Username: "canopy-monitor", Password: "secret-cdc-1"} }, field: "credentials"},
		{name: "cdc on redis", edit: func(s *NodeSpec) {
			s.Engine, s.Database, s.CDC = EngineRedis, "", Credentials{Username: "canopy-cdc", Password: "secret-cdc-1"}
		}, field: "cdc"},
		{name: "mysql without database", edit: func(s *NodeSpec) { s.Database = "" }, field: "database"},
		{name: "database with backtick", edit: func(s *NodeSpec) { s.Database = "a`b" }, field: "database"},
		{name: "setting key with space", edit: func(s *NodeSpec) { s.Settings = map[string]string{"a b": "1"} }, field: "settings"},
		{name: "setting value with newline", edit: func(s *NodeSpec) { s.Settings = map[string]string{"max_connections": "1\n2"} }, field: "settings"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := validSpec()
			tc.edit(&s)
			err := s.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var se *SpecError
			if !errors.As(err, &se) || se.Field != tc.field {
				t.Fatalf("Validate() = %v, want a SpecError on %s", err, tc.field)
			}
		})
	}
}

func TestEndpointOf(t *testing.T) {
	e, err := EndpointOf(Node{Address: "127.0.0.1:3307"})
	if err != nil || e != (Endpoint{Host: "127.0.0.1", Port: 3307}) || e.String() != "127.0.0.1:3307" {
		t.Fatalf("EndpointOf = %+v, %v", e, err)
	}
	if _, err := EndpointOf(Node{Address: "nope"}); err == nil {
		t.Fatal("EndpointOf(nope) succeeded")
	}
}
