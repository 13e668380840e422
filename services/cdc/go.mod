module github.com/canopy-platform/canopy/services/cdc

go 1.26.0

replace github.com/canopy-platform/canopy/libs => ../../libs

replace github.com/canopy-platform/canopy/api => ../../api

require (
	filippo.io/edwards25519 v1.2.0 // indirect
	github.com/go-mysql-org/go-mysql v1.14.0 // indirect
	github.com/go-sql-driver/mysql v1.10.2 // indirect
	go.uber.org/goleak v1.3.0 // indirect
)
