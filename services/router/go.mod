module github.com/canopy-platform/canopy/services/router

go 1.26.0

replace github.com/canopy-platform/canopy/libs => ../../libs

replace github.com/canopy-platform/canopy/api => ../../api

require (
	github.com/canopy-platform/canopy/api v0.0.0
	github.com/canopy-platform/canopy/libs v0.0.0
)
