package main

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The flag.Value types behind the flag table (flags.go). Each points at a
// config field; Set validates as etcd's flag does, so a bad value is a
// usage error (exit 2) naming the flag, and String gives the value in the
// form Set takes (what "non-default" is judged on).

// errParse is what the flag package's own number types say.
var errParse = errors.New("parse error")

type stringValue struct{ p *string }

func (v stringValue) Set(s string) error { *v.p = s; return nil }
func (v stringValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

// choiceValue takes one of a fixed set of strings (etcd's
// SelectiveStringValue).
type choiceValue struct {
	p       *string
	choices []string
}

func (v choiceValue) Set(s string) error {
	for _, c := range v.choices {
		if s == c {
			*v.p = s
			return nil
		}
	}
	return fmt.Errorf("invalid value %q (valid values are %q)", s, v.choices)
}
func (v choiceValue) String() string { return stringValue{v.p}.String() }

type boolValue struct{ p *bool }

func (v boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errParse
	}
	*v.p = b
	return nil
}
func (v boolValue) String() string {
	if v.p == nil {
		return "false"
	}
	return strconv.FormatBool(*v.p)
}
func (boolValue) IsBoolFlag() bool { return true }

// uintValue is an unsigned flag of T's width (uint, uint32, uint64).
type uintValue[T ~uint | ~uint32 | ~uint64] struct{ p *T }

func (v uintValue[T]) Set(s string) error {
	var zero T
	n, err := strconv.ParseUint(s, 0, bitsOf(zero))
	if err != nil {
		return errParse
	}
	*v.p = T(n)
	return nil
}
func (v uintValue[T]) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.FormatUint(uint64(*v.p), 10)
}

func bitsOf[T ~uint | ~uint32 | ~uint64](T) int {
	var max T
	max--
	if uint64(max) == 1<<32-1 {
		return 32
	}
	return 64
}

type intValue[T ~int | ~int64] struct{ p *T }

func (v intValue[T]) Set(s string) error {
	n, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		return errParse
	}
	*v.p = T(n)
	return nil
}
func (v intValue[T]) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.FormatInt(int64(*v.p), 10)
}

type durationValue struct{ p *time.Duration }

func (v durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errParse
	}
	*v.p = d
	return nil
}
func (v durationValue) String() string {
	if v.p == nil {
		return "0s"
	}
	return v.p.String()
}

// listValue is a comma-separated list (etcd's StringsValue and
// UniqueStringsValue; duplicates are dropped, order kept).
type listValue struct{ p *[]string }

func (v listValue) Set(s string) error {
	*v.p = splitList(s)
	return nil
}
func (v listValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.Join(*v.p, ",")
}

// endpointsValue is a comma-separated list that keeps empty items (each
// other item trimmed; duplicates dropped), as etcd's UniqueStringsValue
// keeps them for --discovery-endpoints, so that validate can refuse them.
// An empty value is no list (etcd reads it as one empty item, and so
// refuses its own default).
type endpointsValue struct{ p *[]string }

func (v endpointsValue) Set(s string) error {
	if s == "" {
		*v.p = nil
		return nil
	}
	*v.p = splitItems(s, true)
	return nil
}
func (v endpointsValue) String() string { return listValue(v).String() }

// urlsValue is a comma-separated list of URLs, checked as etcd checks
// them (types.NewURLs): a scheme of http, https, unix or unixs, a
// host:port for http(s), no path. exceptions (such as "*" for --cors) are
// taken as they are.
type urlsValue struct {
	p          *[]string
	exceptions []string
}

func (v urlsValue) Set(s string) error {
	list := splitList(s)
	for _, u := range list {
		if isOneOf(u, v.exceptions) {
			continue
		}
		if err := checkURL(u); err != nil {
			return err
		}
	}
	*v.p = list
	return nil
}
func (v urlsValue) String() string { return listValue{v.p}.String() }

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	switch u.Scheme {
	case "http", "https":
		if !strings.Contains(u.Host, ":") || u.Port() == "" {
			return fmt.Errorf("URL address does not have the form \"host:port\": %s", s)
		}
	case "unix", "unixs":
	default:
		return fmt.Errorf("URL scheme must be http, https, unix, or unixs: %s", s)
	}
	if u.Path != "" && u.Scheme != "unix" && u.Scheme != "unixs" {
		return fmt.Errorf("URL must not contain a path: %s", s)
	}
	return nil
}

// splitList is a flag's comma-separated list: trimmed items, no empty
// ones, no duplicates.
func splitList(s string) []string { return splitItems(s, false) }

// splitItems splits a comma-separated list into its items, trimmed,
// duplicates dropped, and empty ones too unless keepEmpty.
func splitItems(s string, keepEmpty bool) []string {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); (part != "" || keepEmpty) && !isOneOf(part, out) {
			out = append(out, part)
		}
	}
	return out
}

func isOneOf(s string, list []string) bool {
	for _, l := range list {
		if s == l {
			return true
		}
	}
	return false
}

// removedValue is a flag etcd 3.7.3 lists in its help but refuses
// (--discovery, --discovery-proxy): it parses, an empty value is
// accepted, and any other is a usage error.
type removedValue struct{ why string }

func (v removedValue) Set(s string) error {
	if s == "" {
		return nil
	}
	return errors.New(v.why)
}
func (removedValue) String() string { return "" }

// ignoredValue is one of the flags etcd 3.7 still takes and ignores
// (etcd 2's --force, --snapshot, -v, ...): any value, or none.
type ignoredValue struct{}

func (ignoredValue) Set(string) error { return nil }
func (ignoredValue) String() string   { return "" }
func (ignoredValue) IsBoolFlag() bool { return true }

var (
	_ flag.Value = stringValue{}
	_ flag.Value = uintValue[uint]{}
	_ flag.Value = intValue[int]{}
)
