// Package alerting is Canopy's alerting service (work in progress: the
// service package is written by the wiring helper).
package alerting
