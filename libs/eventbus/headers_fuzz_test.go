package eventbus

import (
	"context"
	"testing"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// FuzzDecodeEvent feeds arbitrary CloudEvents, tenant and trace headers to
// the consumer's decoding: decodeEvent must never panic, every rejection must
// be poison (so the subscriber dead-letters it without retrying), and an
// accepted event must carry what handlers rely on. The trace headers go
// through the W3C propagator the subscriber uses.
func FuzzDecodeEvent(f *testing.F) {
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	f.Add("1.0", "id-1", "a.b.c", "/src", "2024-05-06T07:08:09.123456789Z", "acme", tp, "ce_region", "eu", []byte("{}"))
	f.Add("", "1", "t", "", "", "", "", "", "", []byte(nil))
	f.Add("0.3", "1", "t", "", "", "", "", "", "", []byte("{}"))
	f.Add("1.0", "", "t", "", "yesterday", "", "", "", "", []byte("{}"))
	f.Add("1.0", "1", "", "", "2024-13-45T99:99:99Z", "", "", "", "", []byte("{}"))
	f.Add("1.x", "1", "t", "/s", "0000-01-01T00:00:00+23:59", "Not A Tenant", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tenant", "x", []byte("\xff"))
	f.Add("1.0", "1", "t", "/s", "", "acme", "00-00000000000000000000000000000000-0000000000000000-00", "", "", []byte("{}"))
	f.Add("1.0", "1", "t", "/s", "", "-", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra", "ce_id", "dup", []byte("[]"))

	prop := propagation.TraceContext{}
	f.Fuzz(func(t *testing.T, spec, id, typ, source, at, tenant, traceparent, extKey, extVal string, value []byte) {
		var hs []kafka.Header
		add := func(k, v string) {
			if v != "" {
				hs = append(hs, kafka.Header{Key: k, Value: []byte(v)})
			}
		}
		add(HeaderSpecVersion, spec)
		add(HeaderID, id)
		add(HeaderType, typ)
		add(HeaderSource, source)
		add(HeaderTime, at)
		add(HeaderTenant, tenant)
		add(HeaderTraceParent, traceparent)
		add(extKey, extVal)
		m := kafka.Message{Topic: "canopy.test.v1", Key: []byte(id), Value: value, Headers: hs}

		ev, err := decodeEvent(&m)
		if err != nil {
			if ClassOf(err) != ClassPoison {
				t.Fatalf("decode error %v is %s, want poison", err, ClassOf(err))
			}
			return
		}
		if ev.ID == "" || ev.Type == "" || ev.ContentType == "" {
			t.Fatalf("accepted an event without id, type or content type: %+v", ev)
		}
		ctx := prop.Extract(context.Background(), (*headerCarrier)(&m.Headers))
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() && !sc.IsRemote() {
			t.Fatalf("extracted span context %v is not remote", sc)
		}
	})
}
