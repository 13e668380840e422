module github.com/canopy-platform/canopy/services/cdc

go 1.26.0

replace github.com/canopy-platform/canopy/libs => ../../libs

replace github.com/canopy-platform/canopy/api => ../../api

require github.com/go-sql-driver/mysql v1.10.1

require go.yaml.in/yaml/v3 v3.0.5 // indirect

require (
	filippo.io/edwards25519 v1.2.0 // indirect
	github.com/canopy-platform/canopy/libs v0.0.0
	github.com/stretchr/testify v1.12.1
)
