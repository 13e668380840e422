module github.com/canopy-platform/canopy/services/allinone

go 1.26.0

require github.com/canopy-platform/canopy/libs v0.0.0

replace github.com/canopy-platform/canopy/libs => ../../libs
