module github.com/canopy-platform/canopy/services/failover

go 1.26.0

replace github.com/canopy-platform/canopy/libs => ../../libs

replace github.com/canopy-platform/canopy/api => ../../api

require (
	github.com/canopy-platform/canopy/api v0.0.0
	github.com/canopy-platform/canopy/libs v0.0.0
	github.com/go-sql-driver/mysql v1.10.1
	github.com/oklog/ulid/v2 v2.1.2
	github.com/redis/go-redis/v9 v9.23.0
	github.com/stretchr/testify v1.12.1
	go.uber.org/goleak v1.3.0
)

require (
	filippo.io/edwards25519 v1.2.0 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/sys v0.49.0 // indirect
)
