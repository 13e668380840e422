module github.com/canopy-platform/canopy/services/cdc

go 1.26.0

replace github.com/canopy-platform/canopy/libs => ../../libs

replace github.com/canopy-platform/canopy/api => ../../api

require github.com/go-sql-driver/mysql v1.10.1

require filippo.io/edwards25519 v1.2.0 // indirect
