// Package nettune will hold Canopy's network tuning profiles per deployment
// mode (single-az, multi-az, multi-region): node sysctls, engine settings and
// client dialer settings computed from link bandwidth and RTT. Its content
// arrives with provisioning, the first service that applies it.
package nettune
