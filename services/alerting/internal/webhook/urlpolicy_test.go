package webhook

import (
	"context"
	"errors"
	"testing"
)

func TestURLPolicyCheck(t *testing.T) {
	tests := []struct {
		url               string
		public, allowPriv bool // allowed without / with AllowPrivate
	}{
		{"https://93.184.216.34/hook", true, true},
		{"http://8.8.8.8:8080/x", true, true},
		{"http://[2606:4700::1111]/x", true, true},
		{"http://127.0.0.1:9000/hook", false, true},
		{"http://[::1]/hook", false, true},
		{"http://10.1.2.3/hook", false, true},
		{"http://172.16.0.9/hook", false, true},
		{"http://192.168.1.1/hook", false, true},
		{"http://100.64.1.1/hook", false, true},
		{"http://[fc00::1]/hook", false, true},
		{"http://localhost:9000/hook", false, true}, // a name: resolved, every address checked
		{"http://169.254.169.254/latest/meta-data", false, false},
		{"http://[::ffff:169.254.169.254]/", false, false},
		{"http://[fe80::1]/", false, false},
		{"http://100.100.100.200/", false, false},
		{"http://[fd00:ec2::254]/", false, false},
		{"http://0.0.0.0:80/", false, false},
		{"http://[::]/", false, false},
		{"http://224.0.0.1/", false, false},
		{"http://[ff02::1]/", false, false},
		{"http://255.255.255.255/", false, false},
		{"ftp://93.184.216.34/", false, false},
		{"file:///etc/passwd", false, false},
		{"http://user:pw@93.184.216.34/", false, false},
		{"http:///nohost", false, false},
		{"::not a url", false, false},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			for _, p := range []struct {
				policy URLPolicy
				want   bool
			}{{URLPolicy{}, tt.public}, {URLPolicy{AllowPrivate: true}, tt.allowPriv}} {
				err := p.policy.Check(ctx, tt.url)
				if p.want && err != nil {
					t.Errorf("AllowPrivate=%v: refused: %v", p.policy.AllowPrivate, err)
				}
				if !p.want && !errors.Is(err, ErrURLRefused) {
					t.Errorf("AllowPrivate=%v: Check = %v, want ErrURLRefused", p.policy.AllowPrivate, err)
				}
			}
		})
	}
}

// TestTransportRefusesAtConnect: the check runs on the address actually
// dialled, so DNS rebinding after Check does not reach metadata.
func TestTransportRefusesAtConnect(t *testing.T) {
	for _, addr := range []string{"169.254.169.254:80", "[fd00:ec2::254]:80", "100.100.100.200:80", "127.0.0.1:1"} {
		_, err := URLPolicy{}.Transport().DialContext(context.Background(), "tcp", addr)
		if !errors.Is(err, ErrURLRefused) {
			t.Errorf("dial %s = %v, want ErrURLRefused", addr, err)
		}
	}
}
