package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// URLPolicy says which webhook targets are allowed.
type URLPolicy struct {
	// AllowPrivate allows loopback and private (RFC 1918, ULA, shared
	// 100.64/10) addresses; link-local and cloud metadata (169.254.0.0/16,
	// fe80::/10, 100.100.100.200, fd00:ec2::254) are always refused.
	AllowPrivate bool
}

// ErrURLRefused wraps every refusal (the API answers 400 naming "url").
var ErrURLRefused = errors.New("webhook url refused")

// Addresses refused whatever AllowPrivate says: cloud metadata endpoints
// (Alibaba's sits in the shared range, AWS's IPv6 one in the ULA range, so
// they are checked before the private ranges).
var (
	metadataAddrs = []netip.Addr{
		netip.MustParseAddr("100.100.100.200"),
		netip.MustParseAddr("fd00:ec2::254"),
	}
	// sharedRange is RFC 6598 carrier-grade NAT space, private in practice.
	sharedRange = netip.MustParsePrefix("100.64.0.0/10")
	broadcast   = netip.MustParseAddr("255.255.255.255")
)

// Check validates a URL (http/https, host present, no userinfo, address
// allowed; a name is resolved and every address checked).
func (p URLPolicy) Check(ctx context.Context, raw string) error {
	host, err := checkSyntax(raw)
	if err != nil {
		return err
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return p.checkAddr(ip)
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("%w: resolve %s: %v", ErrURLRefused, host, err)
	}
	if len(ips) == 0 {
		return fmt.Errorf("%w: %s has no address", ErrURLRefused, host)
	}
	for _, ip := range ips {
		if err := p.checkAddr(ip); err != nil {
			return fmt.Errorf("%s: %w", host, err)
		}
	}
	return nil
}

// checkSyntax checks what needs no lookup and returns the host.
func checkSyntax(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrURLRefused, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("%w: scheme %q, want http or https", ErrURLRefused, u.Scheme)
	}
	if u.User != nil {
		return "", fmt.Errorf("%w: credentials in the url", ErrURLRefused)
	}
	host := u.Hostname()
	if host == "" {
		return "", fmt.Errorf("%w: no host", ErrURLRefused)
	}
	return host, nil
}

// checkAddr refuses what the policy does not allow.
func (p URLPolicy) checkAddr(ip netip.Addr) error {
	ip = ip.Unmap().WithZone("")
	for _, m := range metadataAddrs {
		if ip == m {
			return fmt.Errorf("%w: %s is a cloud metadata address", ErrURLRefused, ip)
		}
	}
	switch {
	case ip.IsUnspecified() || ip == broadcast:
		return fmt.Errorf("%w: %s is not a unicast address", ErrURLRefused, ip)
	case ip.IsLinkLocalUnicast():
		return fmt.Errorf("%w: %s is link-local", ErrURLRefused, ip)
	case ip.IsMulticast():
		return fmt.Errorf("%w: %s is multicast", ErrURLRefused, ip)
	case ip.IsLoopback() || ip.IsPrivate() || sharedRange.Contains(ip):
		if !p.AllowPrivate {
			return fmt.Errorf("%w: %s is loopback or private and private webhooks are not allowed", ErrURLRefused, ip)
		}
	}
	return nil
}

// Transport returns an http.Transport whose dialer refuses, at connect
// time, addresses the policy refuses (so a name that re-resolves to a
// metadata address after Check is still refused). It uses no proxy from
// the environment: a proxy would connect on our behalf, unchecked.
func (p URLPolicy) Transport() *http.Transport {
	d := &net.Dialer{
		Timeout:   5 * time.Second,
		KeepAlive: 30 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: dial %s: %v", ErrURLRefused, address, err)
			}
			return p.checkAddr(ap.Addr())
		},
	}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}
