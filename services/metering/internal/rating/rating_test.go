package rating_test

import (
	"context"
	"encoding/json"
	"errors"
	"math/big"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/api/events"

	"github.com/canopy-platform/canopy/services/metering/internal/meter"
	"github.com/canopy-platform/canopy/services/metering/internal/rating"
	rt "github.com/canopy-platform/canopy/services/metering/internal/rating/ratingtest"
)

var ctx = context.Background()

// december fills December 2026 for tenant t1: instance i1 (plan small)
// runs one node all month and has 100 GB provisioned, instance i2 (plan
// large) runs two nodes from the 10th; tenant t2 has usage that t1 must
// never see. node_hours of small costs 0.10 until 2026-12-15 12:00 and
// 0.12 from then (mid-day, so that day is rated per hour); storage is
// priced for every plan ("*").
func december(t *testing.T, e *rt.Env) {
	t.Helper()
	dec1, jan1 := rt.Date(2026, 12, 1, 0), rt.Date(2027, 1, 1, 0)
	e.Instance("i1", "t1", "orders-db", "small")
	e.Instance("i2", "t1", "cache", "large")
	e.Instance("i9", "t2", "other", "small")
	e.Price("small", meter.NodeHours, rt.Date(2026, 11, 1, 0), "0.10")
	e.Price("small", meter.NodeHours, rt.Date(2026, 12, 15, 12), "0.12")
	e.Price("large", meter.NodeHours, rt.Date(2026, 11, 1, 0), "0.5")
	e.Price(rating.WildcardPlan, meter.StorageGBHours, rt.Date(2026, 11, 1, 0), "0.000137")
	e.AddHours(rt.Usage{Tenant: "t1", Meter: meter.NodeHours, Subject: "i1", Plan: "small", Region: "eu-1", Total: "3600"}, dec1, jan1)
	e.AddHours(rt.Usage{Tenant: "t1", Meter: meter.StorageGBHours, Subject: "i1", Plan: "small", Region: "eu-1", Total: "360000"}, dec1, jan1)
	e.AddHours(rt.Usage{Tenant: "t1", Meter: meter.NodeHours, Subject: "i2", Plan: "large", Region: "eu-2", Total: "7200"}, rt.Date(2026, 12, 10, 0), jan1)
	e.AddHours(rt.Usage{Tenant: "t2", Meter: meter.NodeHours, Subject: "i9", Plan: "small", Region: "eu-1", Total: "3600"}, dec1, jan1)
}

func TestInvoiceShowsBothPricesOfAMidMonthChange(t *testing.T) {
	e := rt.New(t, rating.Config{}, rt.Date(2026, 12, 20, 9))
	december(t, e)
	inv, err := e.Svc.Invoice(ctx, "t1", "2026-12")
	if err != nil {
		t.Fatal(err)
	}
	if inv.State != rating.StateDraft || inv.ClosedAt != nil || !inv.ClosesAt.Equal(rt.Date(2027, 1, 1, 1)) || inv.Currency != "USD" ||
		!inv.PeriodStart.Equal(rt.Date(2026, 12, 1, 0)) || !inv.PeriodEnd.Equal(rt.Date(2027, 1, 1, 0)) {
		t.Fatalf("draft header = %+v", inv)
	}
	type line struct {
		instance, name, plan, meter, qty, unit, amount string
		from                                           time.Time
	}
	var got []line
	for _, l := range inv.Lines {
		got = append(got, line{l.InstanceID, l.InstanceName, l.PlanID, l.Meter, l.Quantity, l.UnitPrice, l.Amount, l.PriceFrom})
	}
	// i1 node_hours: Dec 1 00:00 – Dec 15 12:00 is 348 h at 0.10, the rest
	// (396 h) at 0.12; i2: 2 nodes × 22 days × 24 h = 1056 h at 0.5;
	// storage 100 GB × 744 h = 74400 GB-h × 0.000137 = 10.1928 → 10.19.
	want := []line{
		{"i1", "orders-db", "small", meter.NodeHours, "348.000000000", "0.10", "34.80", rt.Date(2026, 11, 1, 0)},
		{"i1", "orders-db", "small", meter.NodeHours, "396.000000000", "0.12", "47.52", rt.Date(2026, 12, 15, 12)},
		{"i1", "orders-db", "small", meter.StorageGBHours, "74400.000000000", "0.000137", "10.19", rt.Date(2026, 11, 1, 0)},
		{"i2", "cache", "large", meter.NodeHours, "1056.000000000", "0.50", "528.00", rt.Date(2026, 11, 1, 0)},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("lines:\n got %+v\nwant %+v", got, want)
	}
	if inv.Total != "620.51" {
		t.Fatalf("total = %s, want 620.51 (34.80 + 47.52 + 10.19 + 528.00)", inv.Total)
	}
}

func TestInvoiceRoundsEachLineHalfAwayFromZero(t *testing.T) {
	e := rt.New(t, rating.Config{}, rt.Date(2026, 12, 20, 9))
	e.Price("small", meter.NodeHours, rt.Date(2026, 11, 1, 0), "0.01")
	// 90 s + 45 s of node time: 135 s = 0.0375 h × 0.01 = 0.000375 → 0.00;
	// 1.5 h × 0.01 = 0.015 → 0.02 (half away from zero).
	e.AddUsage(rt.Usage{Tenant: "t1", Meter: meter.NodeHours, Subject: "a", Plan: "small", Total: "90", Hour: rt.Date(2026, 12, 2, 3)},
		rt.Usage{Tenant: "t1", Meter: meter.NodeHours, Subject: "a", Plan: "small", Total: "45", Hour: rt.Date(2026, 12, 2, 4)},
		rt.Usage{Tenant: "t1", Meter: meter.NodeHours, Subject: "b", Plan: "small", Total: "5400", Hour: rt.Date(2026, 12, 3, 4)})
	inv, err := e.Svc.Invoice(ctx, "t1", "2026-12")
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Lines) != 2 || inv.Lines[0].Quantity != "0.037500000" || inv.Lines[0].Amount != "0.00" ||
		inv.Lines[1].Quantity != "1.500000000" || inv.Lines[1].Amount != "0.02" || inv.Total != "0.02" {
		t.Fatalf("invoice = %+v", inv)
	}
}

func TestCostsGroupedByInstanceMeterAndDay(t *testing.T) {
	e := rt.New(t, rating.Config{}, rt.Date(2026, 12, 20, 9))
	december(t, e)
	rows, err := e.Svc.Costs(ctx, meter.Query{Tenant: "t1", From: rt.Date(2026, 12, 14, 0), To: rt.Date(2026, 12, 17, 0),
		Window: meter.Day, GroupBy: []string{meter.ByInstance, meter.ByMeter}})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		day                     int
		instance, meter, amount string
		qty                     float64
	}
	var got []row
	for _, r := range rows {
		if r.Tenant != "t1" || r.Currency != "USD" || !r.WindowEnd.Equal(r.WindowStart.AddDate(0, 0, 1)) {
			t.Fatalf("row %+v", r)
		}
		got = append(got, row{r.WindowStart.Day(), r.Instance, r.Meter, r.Amount, r.Quantity})
	}
	want := []row{
		{14, "i1", meter.NodeHours, "2.400000", 24}, {14, "i1", meter.StorageGBHours, "0.328800", 2400}, {14, "i2", meter.NodeHours, "24.000000", 48},
		// The 15th: 12 h at 0.10 and 12 h at 0.12.
		{15, "i1", meter.NodeHours, "2.640000", 24}, {15, "i1", meter.StorageGBHours, "0.328800", 2400}, {15, "i2", meter.NodeHours, "24.000000", 48},
		{16, "i1", meter.NodeHours, "2.880000", 24}, {16, "i1", meter.StorageGBHours, "0.328800", 2400}, {16, "i2", meter.NodeHours, "24.000000", 48},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("rows:\n got %+v\nwant %+v", got, want)
	}

	// Not grouped by meter: amounts of all meters add up, no quantities.
	rows, err = e.Svc.Costs(ctx, meter.Query{Tenant: "t1", From: rt.Date(2026, 12, 1, 0), To: rt.Date(2027, 1, 1, 0),
		Window: meter.Month, GroupBy: []string{meter.ByRegion}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Region != "eu-1" || rows[0].Amount != "92.512800" || rows[0].Meter != "" || rows[0].Quantity != 0 ||
		rows[1].Region != "eu-2" || rows[1].Amount != "528.000000" {
		t.Fatalf("by region = %+v", rows)
	}

	// Every dimension: the rows are read as stored, not summed.
	rows, err = e.Svc.Costs(ctx, meter.Query{Tenant: "t1", From: rt.Date(2026, 12, 1, 0), To: rt.Date(2027, 1, 1, 0),
		Window: meter.Month, GroupBy: []string{meter.ByInstance, meter.ByRegion, meter.ByPlan, meter.ByMeter}})
	if err != nil {
		t.Fatal(err)
	}
	var all []row
	for _, r := range rows {
		all = append(all, row{r.WindowStart.Day(), r.Instance + "/" + r.Plan + "/" + r.Region, r.Meter, r.Amount, r.Quantity})
	}
	want = []row{
		{1, "i1/small/eu-1", meter.NodeHours, "82.320000", 744}, {1, "i1/small/eu-1", meter.StorageGBHours, "10.192800", 74400},
		{1, "i2/large/eu-2", meter.NodeHours, "528.000000", 1056},
	}
	if !slices.Equal(all, want) {
		t.Fatalf("all dimensions:\n got %+v\nwant %+v", all, want)
	}
}

// TestCostsFromDaysEqualCostsFromHours checks the shortcut: a month read
// from usage_day (per hour only where a price changes inside a day) costs
// exactly what the hours add up to.
func TestCostsFromDaysEqualCostsFromHours(t *testing.T) {
	e := rt.New(t, rating.Config{}, rt.Date(2026, 12, 20, 9))
	december(t, e)
	e.Price(rating.WildcardPlan, meter.NodeHours, rt.Date(2026, 12, 3, 7), "0.07") // plans without their own price only
	e.Price("large", meter.NodeHours, rt.Date(2026, 12, 20, 5), "0.55")
	e.AddHours(rt.Usage{Tenant: "t1", Meter: meter.NodeHours, Subject: "ext", Plan: "", Total: "1234.5"}, rt.Date(2026, 12, 2, 22), rt.Date(2026, 12, 4, 3))
	// sum adds the rows' amounts; each row is rounded to 6 digits, so sums
	// over different rows may differ by half a millionth per row.
	sum := func(window meter.Level, from, to time.Time) (*big.Rat, int) {
		rows, err := e.Svc.Costs(ctx, meter.Query{Tenant: "t1", From: from, To: to, Window: window, GroupBy: []string{meter.ByInstance, meter.ByMeter}})
		if err != nil {
			t.Fatal(err)
		}
		total := new(big.Rat)
		for _, r := range rows {
			v, _ := new(big.Rat).SetString(r.Amount)
			total.Add(total, v)
		}
		return total, len(rows)
	}
	near := func(a, b *big.Rat, rows int) bool {
		d := new(big.Rat).Sub(a, b)
		return d.Abs(d).Cmp(big.NewRat(int64(rows), 2_000_000)) <= 0
	}
	for _, c := range []struct {
		name     string
		from, to time.Time
	}{
		{"month", rt.Date(2026, 12, 1, 0), rt.Date(2027, 1, 1, 0)},
		{"partial days at both ends", rt.Date(2026, 12, 2, 17), rt.Date(2026, 12, 21, 6)},
	} {
		t.Run(c.name, func(t *testing.T) {
			hours, n := sum(meter.Hour, c.from, c.to)
			if hours.Sign() == 0 {
				t.Fatal("no cost")
			}
			// One row per month: read from days (and hours at the edges and
			// on the days a price changes).
			rep, err := e.Svc.CostReport(ctx, meter.Query{Tenant: "t1", From: c.from, To: c.to, Window: meter.Month, GroupBy: []string{meter.ByInstance, meter.ByMeter}})
			if err != nil {
				t.Fatal(err)
			}
			month, _ := new(big.Rat).SetString(rep.Total)
			if !near(hours, month, n+len(rep.Rows)) {
				t.Fatalf("from hours %s (%d rows) != month window %s", hours.FloatString(6), n, rep.Total)
			}
			if c.name == "month" {
				days, nd := sum(meter.Day, c.from, c.to)
				if !near(days, month, nd+len(rep.Rows)) {
					t.Fatalf("from days %s != month window %s", days.FloatString(6), rep.Total)
				}
				// The invoice rounds per line to cents and agrees to the cent per line.
				inv, err := e.Svc.Invoice(ctx, "t1", "2026-12")
				if err != nil {
					t.Fatal(err)
				}
				total, _ := new(big.Rat).SetString(inv.Total)
				if !near(total, month, 10_000*len(inv.Lines)) {
					t.Fatalf("invoice %s far from costs %s", inv.Total, rep.Total)
				}
			}
		})
	}
}

func TestCostsOfCustomAndUnpricedMeters(t *testing.T) {
	e := rt.New(t, rating.Config{}, rt.Date(2026, 12, 20, 9))
	e.Meter("api_calls", "call", "COUNT", "1000")
	e.Price(rating.WildcardPlan, "api_calls", rt.Date(2026, 12, 1, 0), "0.4") // per 1000 calls
	e.AddUsage(rt.Usage{Tenant: "t1", Meter: "api_calls", Subject: "gw", Count: 2500, Total: "2500", Hour: rt.Date(2026, 12, 5, 1)},
		rt.Usage{Tenant: "t1", Meter: meter.NetworkBytesIn, Subject: "i1", Total: "1000000", Hour: rt.Date(2026, 12, 5, 1)},
		rt.Usage{Tenant: "t1", Meter: meter.ConnectionsMax, Subject: "i1", Total: "12", Count: 1, Max: "12", Hour: rt.Date(2026, 12, 5, 1)},
		rt.Usage{Tenant: "t1", Meter: meter.ConnectionsMax, Subject: "i1", Total: "30", Count: 1, Max: "30", Hour: rt.Date(2026, 12, 5, 2)})
	rows, err := e.Svc.Costs(ctx, meter.Query{Tenant: "t1", From: rt.Date(2026, 12, 5, 0), To: rt.Date(2026, 12, 6, 0),
		Window: meter.Day, GroupBy: []string{meter.ByMeter}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rows {
		got[r.Meter] = r.Amount
		switch r.Meter {
		case "api_calls":
			if r.Quantity != 2.5 || r.Unit != "call" {
				t.Fatalf("api_calls row %+v", r)
			}
		case meter.ConnectionsMax:
			if r.Quantity != 30 {
				t.Fatalf("connections_max row %+v", r)
			}
		}
	}
	want := map[string]string{"api_calls": "1.000000", meter.NetworkBytesIn: "0.000000", meter.ConnectionsMax: "0.000000"}
	if len(got) != len(want) {
		t.Fatalf("rows %+v", rows)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s amount = %q, want %q (rows %+v)", k, got[k], v, rows)
		}
	}
	if _, err := e.Svc.Costs(ctx, meter.Query{Tenant: "t1", Meters: []string{"nope"}, From: rt.Date(2026, 12, 5, 0),
		To: rt.Date(2026, 12, 6, 0), Window: meter.Day}); !fieldError(err, "meter") {
		t.Fatalf("unknown meter: %v", err)
	}
}

func fieldError(err error, fields ...string) bool {
	var ve *rating.ValidationError
	if !errors.As(err, &ve) {
		return false
	}
	var got []string
	for _, f := range ve.Fields {
		got = append(got, f.Field)
	}
	return slices.Equal(got, fields)
}

func TestClosedInvoiceIsImmutable(t *testing.T) {
	e := rt.New(t, rating.Config{Grace: time.Hour}, rt.Date(2026, 12, 1, 0).Add(30*time.Minute))
	e.Instance("i1", "t1", "orders-db", "small")
	e.Price("small", meter.NodeHours, rt.Date(2026, 10, 1, 0), "0.10")
	e.AddHours(rt.Usage{Tenant: "t1", Meter: meter.NodeHours, Subject: "i1", Plan: "small", Total: "3600"}, rt.Date(2026, 11, 1, 0), rt.Date(2026, 11, 11, 0))
	e.AddHours(rt.Usage{Tenant: "t2", Meter: meter.NodeHours, Subject: "i9", Plan: "small", Total: "3600"}, rt.Date(2026, 11, 1, 0), rt.Date(2026, 11, 2, 0))

	// Within the grace window the month is still a draft and still moves.
	if err := e.Svc.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	inv, err := e.Svc.Invoice(ctx, "t1", "2026-11")
	if err != nil || inv.State != rating.StateDraft || inv.Total != "24.00" {
		t.Fatalf("draft = %+v, %v", inv, err)
	}
	if n := e.Int("SELECT COUNT(*) FROM invoices"); n != 0 {
		t.Fatalf("%d invoices closed before month end + grace", n)
	}
	e.AddUsage(rt.Usage{Tenant: "t1", Meter: meter.NodeHours, Subject: "i1", Plan: "small", Total: "1800", Hour: rt.Date(2026, 11, 30, 23)})

	e.Clock.Set(rt.Date(2026, 12, 1, 1))
	replica := e.Replica()
	var wg sync.WaitGroup
	for _, s := range []*rating.Service{e.Svc, replica} {
		wg.Go(func() {
			if err := s.RunOnce(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := e.Int("SELECT COUNT(*) FROM invoices WHERE month = '2026-11'"); n != 2 {
		t.Fatalf("%d invoices closed for 2026-11, want 2 (t1 and t2)", n)
	}
	if n := e.Int("SELECT COUNT(*) FROM invoice_lines WHERE tenant_id = 't1' AND month = '2026-11'"); n != 1 {
		t.Fatalf("%d lines for t1, want 1", n)
	}
	closed, err := e.Svc.Invoice(ctx, "t1", "2026-11")
	if err != nil {
		t.Fatal(err)
	}
	if closed.State != rating.StateClosed || closed.ClosedAt == nil || !closed.ClosedAt.Equal(rt.Date(2026, 12, 1, 1)) ||
		closed.Total != "24.05" || len(closed.Lines) != 1 || closed.Lines[0].Quantity != "240.500000000" ||
		closed.Lines[0].UnitPrice != "0.10" || closed.Lines[0].InstanceName != "orders-db" {
		t.Fatalf("closed = %+v", closed)
	}

	// Later changes to the month's usage, prices or names do not alter it.
	e.AddUsage(rt.Usage{Tenant: "t1", Meter: meter.NodeHours, Subject: "i1", Plan: "small", Total: "36000", Hour: rt.Date(2026, 11, 20, 0)})
	e.Exec("UPDATE prices SET unit_price = 9 WHERE plan_id = 'small'")
	e.Exec("UPDATE instances SET name = 'renamed'")
	e.Clock.Set(rt.Date(2026, 12, 3, 0))
	if err := e.Svc.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := e.Svc.Invoice(ctx, "t1", "2026-11")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(closed)
	b, _ := json.Marshal(again)
	if string(a) != string(b) {
		t.Fatalf("closed invoice changed:\n%s\n%s", a, b)
	}

	// Prices cannot be set inside the closed month.
	_, err = e.Svc.SetPrice(ctx, rating.PriceInput{PlanID: "small", Meter: meter.NodeHours, EffectiveFrom: "2026-11-30T00:00:00Z",
		Currency: "USD", UnitPrice: "1"})
	if !fieldError(err, "effective_from") {
		t.Fatalf("price inside a closed month: %v", err)
	}
}

func TestInvoiceClosesOnReadPastGrace(t *testing.T) {
	e := rt.New(t, rating.Config{Grace: 2 * time.Hour}, rt.Date(2026, 12, 1, 2))
	e.AddUsage(rt.Usage{Tenant: "t1", Meter: meter.NodeHours, Subject: "i1", Plan: "p", Total: "3600", Hour: rt.Date(2026, 11, 3, 0)})
	e.Price("p", meter.NodeHours, rt.Date(2026, 1, 1, 0), "1")
	inv, err := e.Svc.Invoice(ctx, "t1", "2026-11")
	if err != nil || inv.State != rating.StateClosed || inv.Total != "1.00" {
		t.Fatalf("invoice = %+v, %v", inv, err)
	}
	if n := e.Int("SELECT COUNT(*) FROM invoices WHERE tenant_id = 't1' AND month = '2026-11'"); n != 1 {
		t.Fatalf("%d invoices stored", n)
	}
	// A past month without usage is closed with nothing to bill, and leaves no row.
	empty, err := e.Svc.Invoice(ctx, "t1", "1999-01")
	if err != nil || empty.State != rating.StateClosed || empty.Total != "0.00" || len(empty.Lines) != 0 || empty.ClosedAt != nil {
		t.Fatalf("empty month = %+v, %v", empty, err)
	}
	if n := e.Int("SELECT COUNT(*) FROM invoices"); n != 1 {
		t.Fatalf("%d invoices stored after reading an empty month", n)
	}
	if _, err := e.Svc.Invoice(ctx, "t1", "2026-13"); !fieldError(err, "month") {
		t.Fatalf("bad month: %v", err)
	}
}

func TestBudgetThresholdsAnnouncedOnce(t *testing.T) {
	// Dec 10 00:00: 9 of 31 days gone.
	e := rt.New(t, rating.Config{}, rt.Date(2026, 12, 10, 0))
	e.Price("p", meter.NodeHours, rt.Date(2026, 1, 1, 0), "1")
	if _, err := e.Svc.SetBudget(ctx, "t1", rating.BudgetInput{Amount: "100"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Svc.SetBudget(ctx, "t2", rating.BudgetInput{Amount: "100"}); err != nil {
		t.Fatal(err)
	}
	use := func(tenant string, hours int, at time.Time) {
		e.AddUsage(rt.Usage{Tenant: tenant, Meter: meter.NodeHours, Subject: "i", Plan: "p", Total: big.NewInt(int64(hours) * 3600).String(), Hour: at})
	}
	replica := e.Replica()
	run := func() {
		var wg sync.WaitGroup
		for _, s := range []*rating.Service{e.Svc, replica} {
			wg.Go(func() {
				if err := s.RunOnce(ctx); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	count := func(tenant string) int { return e.Outbox(events.TypeMeteringBudgetThreshold, tenant) }

	// actual 30: forecast 30 × 31 / 9 = 103.33 crosses 80 and 100.
	use("t1", 30, rt.Date(2026, 12, 2, 0))
	run()
	run()
	if n := count("t1"); n != 2 {
		t.Fatalf("%d announcements after the forecast crossed 80 and 100, want 2", n)
	}
	use("t1", 55, rt.Date(2026, 12, 3, 0)) // actual 85
	run()
	if n := count("t1"); n != 3 {
		t.Fatalf("%d announcements after actual crossed 80, want 3", n)
	}
	use("t1", 20, rt.Date(2026, 12, 4, 0)) // actual 105
	run()
	run()
	if n := count("t1"); n != 4 {
		t.Fatalf("%d announcements after actual crossed 100, want 4", n)
	}
	if n := count("t2"); n != 0 {
		t.Fatalf("t2 without usage got %d announcements", n)
	}
	b, err := e.Svc.GetBudget(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	if b.Actual != "105.00" || b.Forecast != "361.67" || len(b.Crossings) != 4 || b.Month != "2026-12" || b.Amount != "100.00" {
		t.Fatalf("budget = %+v", b)
	}
	var p events.BudgetThreshold
	payloads := e.Payloads(events.TypeMeteringBudgetThreshold)
	if err := json.Unmarshal(payloads[2], &p); err != nil {
		t.Fatal(err)
	}
	if p.TenantID != "t1" || p.Month != "2026-12" || p.Kind != rating.KindActual || p.ThresholdPercent != 80 ||
		p.Budget != "100.00" || p.Actual != "85.00" || p.Currency != "USD" {
		t.Fatalf("third announcement = %+v", p)
	}

	// A new month announces again.
	e.Clock.Set(rt.Date(2027, 1, 16, 0))
	use("t1", 90, rt.Date(2027, 1, 2, 0)) // actual 90, forecast 90 × 31 / 15 = 186
	run()
	if n := count("t1"); n != 7 {
		t.Fatalf("%d announcements after January's actual 80 and forecast 80 and 100, want 7", n)
	}
	if n := e.Int("SELECT COUNT(*) FROM budget_crossings WHERE tenant_id = 't1' AND month = '2027-01'"); n != 3 {
		t.Fatalf("%d crossings in January, want 3", n)
	}

	// A new amount forgets the month's announcements; the same amount does not.
	if _, err := e.Svc.SetBudget(ctx, "t1", rating.BudgetInput{Amount: "100.00", Thresholds: []int{100, 80}}); err != nil {
		t.Fatal(err)
	}
	run()
	if n := count("t1"); n != 7 {
		t.Fatalf("re-setting the same budget announced again: %d", n)
	}
	if _, err := e.Svc.SetBudget(ctx, "t1", rating.BudgetInput{Amount: "1000"}); err != nil {
		t.Fatal(err)
	}
	run()
	if n := count("t1"); n != 7 {
		t.Fatalf("a higher budget announced %d", n-7)
	}
	if err := e.Svc.DeleteBudget(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Svc.GetBudget(ctx, "t1"); !errors.Is(err, rating.ErrNotFound) {
		t.Fatalf("deleted budget: %v", err)
	}
	if err := e.Svc.DeleteBudget(ctx, "t1"); !errors.Is(err, rating.ErrNotFound) {
		t.Fatalf("deleting twice: %v", err)
	}
}

func TestBudgetValidation(t *testing.T) {
	e := rt.New(t, rating.Config{}, rt.Date(2026, 12, 10, 0))
	for _, c := range []struct {
		name   string
		in     rating.BudgetInput
		fields []string
	}{
		{"negative", rating.BudgetInput{Amount: "-1"}, []string{"amount"}},
		{"zero", rating.BudgetInput{Amount: "0"}, []string{"amount"}},
		{"sub-cent", rating.BudgetInput{Amount: "1.001"}, []string{"amount"}},
		{"currency", rating.BudgetInput{Amount: "1", Currency: "usd"}, []string{"currency"}},
		{"other currency", rating.BudgetInput{Amount: "1", Currency: "EUR"}, []string{"currency"}},
		{"no thresholds", rating.BudgetInput{Amount: "1", Thresholds: []int{}}, []string{"thresholds"}},
		{"repeated", rating.BudgetInput{Amount: "1", Thresholds: []int{80, 80}}, []string{"thresholds"}},
		{"range", rating.BudgetInput{Amount: "1", Thresholds: []int{0}}, []string{"thresholds"}},
		{"all", rating.BudgetInput{Amount: "x", Currency: "E", Thresholds: []int{5000}}, []string{"amount", "currency", "thresholds"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := e.Svc.SetBudget(ctx, "t1", c.in); !fieldError(err, c.fields...) {
				t.Fatalf("err = %v, want fields %v", err, c.fields)
			}
		})
	}
}

func TestRatedEventsOncePerHourTenantAndMeter(t *testing.T) {
	e := rt.New(t, rating.Config{Grace: time.Hour}, rt.Date(2026, 12, 1, 10).Add(20*time.Minute))
	e.Price("small", meter.NodeHours, rt.Date(2026, 1, 1, 0), "0.10")
	e.Price("large", meter.NodeHours, rt.Date(2026, 1, 1, 0), "0.50")
	// Usage before the first run's hour is not backfilled.
	e.AddUsage(rt.Usage{Tenant: "t1", Meter: meter.NodeHours, Subject: "i0", Plan: "small", Total: "3600", Hour: rt.Date(2026, 12, 1, 9)})
	if err := e.Svc.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	h10 := rt.Date(2026, 12, 1, 10)
	e.AddUsage(
		rt.Usage{Tenant: "t1", Meter: meter.NodeHours, Subject: "i1", Plan: "small", Total: "1800", Hour: h10},
		rt.Usage{Tenant: "t1", Meter: meter.NodeHours, Subject: "i2", Plan: "large", Total: "3600", Hour: h10},
		rt.Usage{Tenant: "t1", Meter: meter.NetworkBytesIn, Subject: "i1", Plan: "small", Total: "5000", Hour: h10},
		rt.Usage{Tenant: "t1", Meter: meter.ConnectionsMax, Subject: "i1", Plan: "small", Total: "4", Max: "4", Count: 1, Hour: h10},
		rt.Usage{Tenant: "t2", Meter: meter.NodeHours, Subject: "i9", Plan: "small", Total: "3600", Hour: h10},
	)
	replica := e.Replica()
	run := func() {
		var wg sync.WaitGroup
		for _, s := range []*rating.Service{e.Svc, replica} {
			wg.Go(func() {
				if err := s.RunOnce(ctx); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	e.Clock.Set(rt.Date(2026, 12, 1, 11).Add(59 * time.Minute)) // 10:00 + 1 h + grace not reached
	run()
	if n := e.Outbox(events.TypeMeteringUsageRated, ""); n != 0 {
		t.Fatalf("%d rated events before hour end + grace", n)
	}
	e.Clock.Set(rt.Date(2026, 12, 1, 12))
	run()
	run()
	payloads := e.Payloads(events.TypeMeteringUsageRated)
	var got []events.UsageRated
	for _, p := range payloads {
		var u events.UsageRated
		if err := json.Unmarshal(p, &u); err != nil {
			t.Fatal(err)
		}
		got = append(got, u)
	}
	want := []events.UsageRated{
		{TenantID: "t1", Meter: meter.NetworkBytesIn, Unit: "byte", HourStart: h10, Quantity: "5000.000000000", Amount: "0.000000000", Currency: "USD"},
		{TenantID: "t1", Meter: meter.NodeHours, Unit: "node-hour", HourStart: h10, Quantity: "1.500000000", Amount: "0.550000000", Currency: "USD"},
		{TenantID: "t2", Meter: meter.NodeHours, Unit: "node-hour", HourStart: h10, Quantity: "1.000000000", Amount: "0.100000000", Currency: "USD"},
	}
	if len(got) != len(want) {
		t.Fatalf("rated events = %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if n := e.Outbox(events.TypeMeteringUsageRated, "t1"); n != 2 {
		t.Fatalf("%d events keyed t1, want 2", n)
	}
	if n := e.Int("SELECT COUNT(DISTINCT event_id) FROM outbox"); n != len(want) {
		t.Fatalf("%d distinct event ids", n)
	}
	// Hours without usage publish nothing but move the cursor on.
	e.Clock.Set(rt.Date(2026, 12, 1, 15))
	run()
	if n := e.Outbox(events.TypeMeteringUsageRated, ""); n != 3 {
		t.Fatalf("%d rated events after empty hours", n)
	}
	if n := e.Int("SELECT COUNT(*) FROM cursors WHERE name = ? AND at = ?", rating.CursorRatedThrough, rt.Date(2026, 12, 1, 14)); n != 1 {
		t.Fatal("cursor not at 14:00")
	}
}

func TestPrices(t *testing.T) {
	e := rt.New(t, rating.Config{}, rt.Date(2026, 12, 10, 0).Add(30*time.Minute))
	e.Meter("api_calls", "call", "COUNT", "1")
	e.Meter("peak", "x", "MAX", "1")
	p, err := e.Svc.SetPrice(ctx, rating.PriceInput{PlanID: "*", Meter: "api_calls", EffectiveFrom: "2026-12-11T00:00:00Z", Currency: "USD", UnitPrice: "0.000125"})
	if err != nil {
		t.Fatal(err)
	}
	if p.UnitPrice != "0.000125" || p.Source != "admin" || !p.EffectiveFrom.Equal(rt.Date(2026, 12, 11, 0)) || p.EffectiveTo != nil {
		t.Fatalf("price = %+v", p)
	}
	// Current month, earlier than now: allowed (the month is open).
	if _, err := e.Svc.SetPrice(ctx, rating.PriceInput{PlanID: "*", Meter: "api_calls", EffectiveFrom: "2026-12-01T00:00:00Z", Currency: "USD", UnitPrice: "1"}); err != nil {
		t.Fatal(err)
	}
	list, err := e.Svc.ListPrices(ctx, "*", "api_calls")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].UnitPrice != "1.00" || list[0].EffectiveTo == nil || !list[0].EffectiveTo.Equal(rt.Date(2026, 12, 11, 0)) {
		t.Fatalf("list = %+v", list)
	}
	for _, c := range []struct {
		name   string
		in     rating.PriceInput
		fields []string
	}{
		{"all", rating.PriceInput{}, []string{"meter", "plan_id", "currency", "unit_price", "effective_from"}},
		{"unknown meter", rating.PriceInput{PlanID: "*", Meter: "nope", EffectiveFrom: "2026-12-11T00:00:00Z", Currency: "USD", UnitPrice: "1"}, []string{"meter"}},
		{"max meter", rating.PriceInput{PlanID: "*", Meter: "peak", EffectiveFrom: "2026-12-11T00:00:00Z", Currency: "USD", UnitPrice: "1"}, []string{"meter"}},
		{"not an hour", rating.PriceInput{PlanID: "p", Meter: "api_calls", EffectiveFrom: "2026-12-11T00:30:00Z", Currency: "USD", UnitPrice: "1"}, []string{"effective_from"}},
		{"closed month", rating.PriceInput{PlanID: "p", Meter: "api_calls", EffectiveFrom: "2026-11-30T23:00:00Z", Currency: "USD", UnitPrice: "1"}, []string{"effective_from"}},
		{"negative", rating.PriceInput{PlanID: "p", Meter: "api_calls", EffectiveFrom: "2026-12-11T00:00:00Z", Currency: "USD", UnitPrice: "-1"}, []string{"unit_price"}},
		{"too precise", rating.PriceInput{PlanID: "p", Meter: "api_calls", EffectiveFrom: "2026-12-11T00:00:00Z", Currency: "USD", UnitPrice: "0.0000000001"}, []string{"unit_price"}},
		{"other currency", rating.PriceInput{PlanID: "p", Meter: "api_calls", EffectiveFrom: "2026-12-11T00:00:00Z", Currency: "EUR", UnitPrice: "1"}, []string{"currency"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := e.Svc.SetPrice(ctx, c.in); !fieldError(err, c.fields...) {
				t.Fatalf("err = %v, want fields %v", err, c.fields)
			}
		})
	}
}

func TestRunDoesTheJobsUntilCancelled(t *testing.T) {
	e := rt.New(t, rating.Config{JobsEvery: 20 * time.Millisecond}, rt.Date(2026, 12, 1, 10))
	c, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.Svc.Run(c) }()
	deadline := time.Now().Add(10 * time.Second)
	for e.Int("SELECT COUNT(*) FROM cursors") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("Run made no cursors within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop within 10 s of cancel")
	}
}
