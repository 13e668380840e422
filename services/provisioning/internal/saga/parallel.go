package saga

import (
	"errors"
	"sync"
)

// parallel runs fn for every node at once and joins the errors.
func parallel[T any](items []T, fn func(*T) error) error {
	return parallelPtr(ptrs(items), fn)
}

func ptrs[T any](items []T) []*T {
	out := make([]*T, len(items))
	for i := range items {
		out[i] = &items[i]
	}
	return out
}

func parallelPtr[T any](items []*T, fn func(*T) error) error {
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(it)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
