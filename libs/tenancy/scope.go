package tenancy

import (
	"context"
	"fmt"
)

// Scope returns the SQL condition that restricts a query to the tenant in ctx
// and its argument, or ErrNoTenant. Repositories build every tenant-owned
// query through it, so a missing tenant fails instead of reading everyone's rows:
//
//	clause, arg, err := tenancy.Scope(ctx)
//	db.QueryContext(ctx, "SELECT ... FROM instances WHERE "+clause+" AND id = ?", arg, id)
func Scope(ctx context.Context) (clause string, arg any, err error) {
	return ScopeColumn(ctx, "tenant_id")
}

// ScopeColumn is Scope for a tenant column with another name (e.g. "i.tenant_id").
// column must be a trusted identifier, never user input.
func ScopeColumn(ctx context.Context, column string) (clause string, arg any, err error) {
	id, err := Require(ctx)
	if err != nil {
		return "", nil, fmt.Errorf("scope query: %w", err)
	}
	return column + " = ?", string(id), nil
}
