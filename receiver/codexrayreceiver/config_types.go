package codexrayreceiver

import (
	"fmt"
	"math"
	"reflect"
	"strings"
)

// checkOptionTypes reports options whose value cannot be what the option is, before the
// collector's decoder sees them: that decoder splits a string given for a list at its commas
// (a glob such as "{a,b}*" breaks), wraps a number too large for an integer option into a
// negative one, and calls a list given for a path an "unconvertible type '[]interface {}'".
// Each message names the option by its full path below the receiver (logs.files.include[2]).
func checkOptionTypes(raw map[string]any, t reflect.Type, prefix string) []error {
	var errs []error
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, ok := f.Tag.Lookup("mapstructure")
		if !ok || !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if strings.Contains(opts, "squash") && ft.Kind() == reflect.Struct {
			errs = append(errs, checkOptionTypes(raw, ft, prefix)...)
			continue
		}
		if name == "" || name == "-" {
			continue
		}
		if v, ok := raw[name]; ok {
			errs = append(errs, checkOptionValue(prefix+name, v, ft)...)
		}
	}
	return errs
}

func checkOptionValue(path string, v any, t reflect.Type) []error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v == nil {
		return nil
	}
	switch t.Kind() {
	case reflect.String:
		if kind := composite(v); kind != "" {
			return []error{fmt.Errorf("%s: expected a single value, got a %s", path, kind)}
		}
	case reflect.Slice:
		switch list := v.(type) {
		case string:
			return []error{fmt.Errorf("%s: expected a list, got the string %q (write [%q] for one entry)", path, list, list)}
		case []any:
			var errs []error
			for i, e := range list {
				errs = append(errs, checkOptionValue(fmt.Sprintf("%s[%d]", path, i), e, t.Elem())...)
			}
			return errs
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if err := checkInteger(path, v, t); err != nil {
			return []error{err}
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if err := checkUnsigned(path, v, t); err != nil {
			return []error{err}
		}
	case reflect.Struct:
		switch m := v.(type) {
		case map[string]any:
			return checkOptionTypes(m, t, path+".")
		case []any:
			return []error{fmt.Errorf("%s: expected a section of options, got a list", path)}
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok || t.Elem().Kind() != reflect.Struct {
			return nil
		}
		var errs []error
		for k, e := range m {
			errs = append(errs, checkOptionValue(path+"."+k, e, t.Elem())...)
		}
		return errs
	}
	return nil
}

// composite names a list or map value ("" for a scalar).
func composite(v any) string {
	switch v.(type) {
	case []any:
		return "list"
	case map[string]any:
		return "map"
	}
	return ""
}

// checkInteger reports a number that a signed integer option of type t cannot hold. Strings
// (durations such as "10s") and other kinds are left to the decoder.
func checkInteger(path string, v any, t reflect.Type) error {
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	if bits := t.Bits(); bits < 64 {
		lo, hi = -1<<(bits-1), 1<<(bits-1)-1
	}
	outOfRange := func(shown string) error {
		return fmt.Errorf("%s: %s is out of range: must be from %d to %d", path, shown, lo, hi)
	}
	switch n := v.(type) {
	case int:
		if int64(n) < lo || int64(n) > hi {
			return outOfRange(fmt.Sprint(n))
		}
	case int64:
		if n < lo || n > hi {
			return outOfRange(fmt.Sprint(n))
		}
	case uint64:
		if n > uint64(hi) {
			return outOfRange(fmt.Sprint(n))
		}
	case float64:
		if math.IsNaN(n) || math.IsInf(n, 0) || n != math.Trunc(n) {
			return fmt.Errorf("%s: %v is not a whole number", path, n)
		}
		// float64(math.MaxInt64) rounds up to 2^63, itself out of range.
		if n < float64(lo) || n > float64(hi) || t.Bits() == 64 && n >= float64(hi) {
			return outOfRange(fmt.Sprint(n))
		}
	}
	return nil
}

// checkUnsigned reports a number that an unsigned integer option of type t cannot hold.
func checkUnsigned(path string, v any, t reflect.Type) error {
	hi := uint64(math.MaxUint64)
	if bits := t.Bits(); bits < 64 {
		hi = 1<<bits - 1
	}
	outOfRange := func(shown string) error {
		return fmt.Errorf("%s: %s is out of range: must be from 0 to %d", path, shown, hi)
	}
	switch n := v.(type) {
	case int:
		if n < 0 || uint64(n) > hi {
			return outOfRange(fmt.Sprint(n))
		}
	case int64:
		if n < 0 || uint64(n) > hi {
			return outOfRange(fmt.Sprint(n))
		}
	case uint64:
		if n > hi {
			return outOfRange(fmt.Sprint(n))
		}
	case float64:
		if math.IsNaN(n) || math.IsInf(n, 0) || n != math.Trunc(n) {
			return fmt.Errorf("%s: %v is not a whole number", path, n)
		}
		if n < 0 || n > float64(hi) || t.Bits() == 64 && n >= float64(hi) {
			return outOfRange(fmt.Sprint(n))
		}
	}
	return nil
}
