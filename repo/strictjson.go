package repo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// checkKeys reports the first object key of the JSON document b that the
// Go type t does not define with exactly that spelling, and the first key
// given twice in one object. encoding/json matches keys regardless of case
// and keeps the last of duplicates, even with DisallowUnknownFields: a
// flipped case bit ("stored_byteS") or a repeated field would otherwise
// read as a valid document, which FORMAT.md forbids ("fields its version
// does not define" are refused). Map keys (topic configs) are free; their
// values are checked against the map's element type.
func checkKeys(b []byte, t reflect.Type) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return walkKeys(d, t, "")
}

// walkKeys reads one JSON value from d, checking object keys against t
// (nil: anything goes), where is the path to it for errors.
func walkKeys(d *json.Decoder, t reflect.Type, where string) error {
	tok, err := d.Token()
	if err != nil {
		return err
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil // a scalar: its type is decoding's business
	}
	switch delim {
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; d.More(); i++ {
			if err := walkKeys(d, elem, fmt.Sprintf("%s[%d]", where, i)); err != nil {
				return err
			}
		}
	case '{':
		var fields map[string]reflect.Type
		if t != nil && t.Kind() == reflect.Struct {
			fields = structFields(t)
		}
		seen := map[string]bool{}
		for d.More() {
			tok, err := d.Token()
			if err != nil {
				return err
			}
			key, _ := tok.(string)
			path := key
			if where != "" {
				path = where + "." + key
			}
			if seen[key] {
				return fmt.Errorf("field %q is given twice", path)
			}
			seen[key] = true
			var vt reflect.Type
			switch {
			case fields != nil:
				var ok bool
				if vt, ok = fields[key]; !ok {
					return fmt.Errorf("unknown field %q (field names are case-sensitive)", path)
				}
			case t != nil && t.Kind() == reflect.Map:
				vt = t.Elem()
			}
			if err := walkKeys(d, vt, path); err != nil {
				return err
			}
		}
	}
	_, err = d.Token() // the closing delimiter
	return err
}

// structFields maps the JSON names of t's exported fields to their types.
func structFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}
