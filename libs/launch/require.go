package launch

import (
	"fmt"
	"reflect"
)

// Require checks a constructor's required dependencies, given as name,
// value pairs in the order they are checked, and reports the first nil one
// as "service: nil name". A nil pointer, map, func, chan or slice in an
// interface counts as nil. It panics on an odd pairs list or a non-string
// name: a programming error, not a runtime condition.
func Require(service string, pairs ...any) error {
	if len(pairs)%2 != 0 {
		panic("launch.Require: odd number of name, value arguments")
	}
	for i := 0; i < len(pairs); i += 2 {
		name, ok := pairs[i].(string)
		if !ok {
			panic(fmt.Sprintf("launch.Require: argument %d is not a name", i))
		}
		if isNil(pairs[i+1]) {
			return fmt.Errorf("%s: nil %s", service, name)
		}
	}
	return nil
}

func isNil(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Func, reflect.Chan, reflect.Slice, reflect.Interface:
		return rv.IsNil()
	}
	return false
}
