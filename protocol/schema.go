package protocol

import (
	"fmt"
	"math"
	"sort"
)

// API is a compiled API declaration: immutable, safe for concurrent use.
type API struct {
	Key             int16
	Name            string
	MinVersion      int16
	MaxVersion      int16
	FlexibleVersion int16 // first flexible version, or NotFlexible
	Route           Route
	Request         *Schema
	Response        *Schema
}

// IsFlexible reports whether version v uses compact encodings and tag
// sections.
func (a *API) IsFlexible(v int16) bool {
	return a.FlexibleVersion != NotFlexible && v >= a.FlexibleVersion
}

// Supports reports whether ktape can encode and decode version v.
func (a *API) Supports(v int16) bool { return v >= a.MinVersion && v <= a.MaxVersion }

// RequestHeaderVersion is the request header version used with version v:
// 2 for flexible versions, else 1.
func (a *API) RequestHeaderVersion(v int16) int16 {
	if a.IsFlexible(v) {
		return 2
	}
	return 1
}

// ResponseHeaderVersion is the response header version used with version v:
// 1 for flexible versions, else 0. ApiVersions responses always use 0 so a
// client can read the error of a version the broker does not know (KIP-511).
func (a *API) ResponseHeaderVersion(v int16) int16 {
	if a.IsFlexible(v) && a.Key != apiVersionsKey {
		return 1
	}
	return 0
}

const apiVersionsKey = 18

func (a *API) String() string { return a.Name }

// Schema is a compiled struct: a request, a response, or a struct nested in
// one. It holds every field of every version; per-version layouts decide
// which are on the wire. Immutable and safe for concurrent use.
type Schema struct {
	name    string // path, e.g. "FetchResponse.Responses.Partitions"
	api     *API
	isReq   bool
	fields  []schemaField
	byName  map[string]int
	layouts []*layout // index: version - api.MinVersion
}

type schemaField struct {
	Field
	slot  int
	child *Schema // struct fields and struct-array elements
	def   any     // normalized default; see Record for the Go types
}

// layout is a schema resolved for one version: the fields in wire order,
// with their encodings decided.
type layout struct {
	schema   *Schema
	version  int16
	flexible bool
	inline   []op  // fields on the wire, in order
	walk     []op  // inline with fixed-width runs merged: what Decoder walks
	unset    []int // slots the walk does not always write: absent, tagged, tag section
	tagged   []op  // tagged fields, by ascending tag
	absent   []int // slots of fields not on the wire in this version
	minSize  int   // smallest possible encoding of this struct
	nslots   int   // len(schema.fields)
	// children are the layouts of struct and struct-array fields, by slot
	// (also for fields absent from this version, whose views read defaults).
	children []*layout
	// arrays describes array fields by slot, for ArrayView.
	arrays []arrayInfo
}

type op struct {
	code     walkCode // the walk's fast path for this op
	width    uint8    // codeFixed: the field's width
	run      *run     // codeRun: consecutive fixed-width fields
	kind     Kind
	elem     Kind
	nullable bool
	slot     int
	tag      uint32
	field    *schemaField
	child    *layout // struct fields and struct-array elements
}

// Name is the schema's path, such as "FetchResponse.Responses".
func (s *Schema) Name() string { return s.name }

// API is the API the schema belongs to.
func (s *Schema) API() *API { return s.api }

// NumFields is the number of declared fields (all versions).
func (s *Schema) NumFields() int { return len(s.fields) }

// Field returns the declaration of field i.
func (s *Schema) Field(i int) Field { return s.fields[i].Field }

// Child returns the schema of a struct or struct-array field, or nil.
func (s *Schema) Child(h Handle) *Schema { s.check(h); return s.fields[h.slot].child }

// Handle returns a pre-resolved handle for the named field. It panics if
// there is no such field: handles are resolved from declarations, at init.
func (s *Schema) Handle(name string) Handle {
	i, ok := s.byName[name]
	if !ok {
		panic(fmt.Sprintf("protocol: %s has no field %q", s.name, name))
	}
	return s.handle(i)
}

func (s *Schema) handle(i int) Handle {
	h := Handle{s: s, slot: i, kind: s.fields[i].Kind}
	switch d := s.fields[i].def.(type) {
	case bool:
		if d {
			h.def = 1
		}
	case int8:
		h.def = uint64(d)
	case int16:
		h.def = uint64(d)
	case uint16:
		h.def = uint64(d)
	case int32:
		h.def = uint64(d)
	case uint32:
		h.def = uint64(d)
	case int64:
		h.def = uint64(d)
	case float64:
		h.def = math.Float64bits(d)
	}
	return h
}

// Lookup is Handle without the panic.
func (s *Schema) Lookup(name string) (Handle, bool) {
	i, ok := s.byName[name]
	if !ok {
		return Handle{}, false
	}
	return s.handle(i), true
}

func (s *Schema) layout(v int16) (*layout, error) {
	i := int(v) - int(s.api.MinVersion)
	if i < 0 || i >= len(s.layouts) {
		return nil, fmt.Errorf("protocol: %s version %d is outside %d-%d", s.api.Name, v, s.api.MinVersion, s.api.MaxVersion)
	}
	return s.layouts[i], nil
}

// Handle names a field of a Schema with O(1) slot access. The zero Handle
// is invalid.
type Handle struct {
	s    *Schema
	slot int
	kind Kind
	def  uint64 // bits of a numeric default, so accessors need no lookup
}

// Kind is the field's wire type.
func (h Handle) Kind() Kind { return h.kind }

// Name is the field's name.
func (h Handle) Name() string { return h.s.fields[h.slot].Name }

func (s *Schema) check(h Handle) {
	if h.s != s {
		panic(fmt.Sprintf("protocol: handle for %s used on %s", h.s.nameOrNil(), s.name))
	}
}

func (s *Schema) nameOrNil() string {
	if s == nil {
		return "<nil>"
	}
	return s.name
}

// NewAPI compiles a declaration. It panics if the declaration is invalid:
// declarations are package-level values checked by tests, so an invalid one
// is a programming error caught before release.
func NewAPI(d APIDef) *API {
	a, err := compileAPI(d)
	if err != nil {
		panic(err)
	}
	return a
}

func compileAPI(d APIDef) (*API, error) {
	if d.MinVersion < 0 || d.MaxVersion < d.MinVersion {
		return nil, fmt.Errorf("protocol: %s: bad version range %d-%d", d.Name, d.MinVersion, d.MaxVersion)
	}
	a := &API{Key: d.Key, Name: d.Name, MinVersion: d.MinVersion, MaxVersion: d.MaxVersion,
		FlexibleVersion: d.FlexibleVersion, Route: d.Route}
	var err error
	if a.Request, err = compileSchema(a, true, d.Name+"Request", d.Request); err != nil {
		return nil, err
	}
	if a.Response, err = compileSchema(a, false, d.Name+"Response", d.Response); err != nil {
		return nil, err
	}
	return a, nil
}

func compileSchema(a *API, isReq bool, name string, fields []Field) (*Schema, error) {
	if len(fields) > maxFields {
		return nil, fmt.Errorf("protocol: %s: %d fields, more than %d", name, len(fields), maxFields)
	}
	s := &Schema{name: name, api: a, isReq: isReq, byName: make(map[string]int, len(fields))}
	s.fields = make([]schemaField, len(fields))
	for i, f := range fields {
		if f.Name == "" {
			return nil, fmt.Errorf("protocol: %s: field %d has no name", name, i)
		}
		if _, dup := s.byName[f.Name]; dup {
			return nil, fmt.Errorf("protocol: %s: duplicate field %s", name, f.Name)
		}
		s.byName[f.Name] = i
		sf := schemaField{Field: f, slot: i}
		if f.nullableAll {
			sf.NullableVersions = f.Versions
		}
		if f.taggedFlex {
			if a.FlexibleVersion == NotFlexible {
				return nil, fmt.Errorf("protocol: %s.%s: tagged field in an API that is never flexible", name, f.Name)
			}
			sf.TaggedVersions = From(max(a.FlexibleVersion, f.Versions.Min))
		}
		if err := checkField(a, name, &sf.Field); err != nil {
			return nil, err
		}
		if f.Kind == KindStruct || (f.Kind == KindArray && f.Elem == KindStruct) {
			child, err := compileSchema(a, isReq, name+"."+f.Name, f.Fields)
			if err != nil {
				return nil, err
			}
			sf.child = child
		}
		def, err := normalizeDefault(&sf)
		if err != nil {
			return nil, fmt.Errorf("protocol: %s.%s: %w", name, f.Name, err)
		}
		sf.def = def
		s.fields[i] = sf
	}
	for v := a.MinVersion; v <= a.MaxVersion; v++ {
		l, err := s.compileLayout(v)
		if err != nil {
			return nil, err
		}
		s.layouts = append(s.layouts, l)
	}
	return s, nil
}

func checkField(a *API, path string, f *Field) error {
	where := path + "." + f.Name
	switch f.Kind {
	case KindBool, KindInt8, KindInt16, KindUint16, KindInt32, KindUint32, KindInt64,
		KindFloat64, KindUUID, KindVarint, KindVarlong:
		if !f.NullableVersions.IsNever() {
			return fmt.Errorf("protocol: %s: a %s cannot be nullable", where, f.Kind)
		}
	case KindString, KindBytes, KindRecords, KindStruct:
	case KindArray:
		switch f.Elem {
		case KindStruct, KindBool, KindInt8, KindInt16, KindUint16, KindInt32, KindUint32,
			KindInt64, KindFloat64, KindUUID, KindVarint, KindVarlong, KindString, KindBytes:
		default:
			return fmt.Errorf("protocol: %s: bad array element kind %s", where, f.Elem)
		}
	default:
		return fmt.Errorf("protocol: %s: bad kind %s", where, f.Kind)
	}
	if f.Versions.IsNever() {
		return fmt.Errorf("protocol: %s: no versions", where)
	}
	if !f.TaggedVersions.IsNever() {
		if a.FlexibleVersion == NotFlexible || f.TaggedVersions.Min < a.FlexibleVersion {
			return fmt.Errorf("protocol: %s: tagged in versions %s, not all flexible", where, f.TaggedVersions)
		}
	}
	return nil
}

func (s *Schema) compileLayout(v int16) (*layout, error) {
	a := s.api
	l := &layout{schema: s, version: v, flexible: a.IsFlexible(v), nslots: len(s.fields)}
	l.children = make([]*layout, len(s.fields))
	l.arrays = make([]arrayInfo, len(s.fields))
	tags := map[uint32]string{}
	for i := range s.fields {
		f := &s.fields[i]
		if f.child != nil {
			l.children[i] = f.child.layouts[int(v)-int(a.MinVersion)]
		}
		if f.Kind == KindArray {
			ai := &l.arrays[i]
			*ai = arrayInfo{l: l.children[i], elem: f.Elem, flexible: l.flexible}
			if ai.l != nil {
				ai.stride = uint32(ai.l.nslots + 1)
			}
			ai.empty[0] = ArrayView{info: ai, n: -1}
			ai.empty[1] = ArrayView{info: ai}
			if isNullDefault(f) {
				ai.empty[1].n = -1
			}
		}
		if !f.Versions.Contains(v) {
			l.absent = append(l.absent, i)
			continue
		}
		o := op{kind: f.Kind, elem: f.Elem, nullable: f.NullableVersions.Contains(v), slot: i, tag: f.TagID, field: f}
		if f.child != nil {
			o.child = f.child.layouts[int(v)-int(a.MinVersion)]
		}
		if f.TaggedVersions.Contains(v) {
			if prev, dup := tags[f.TagID]; dup {
				return nil, fmt.Errorf("protocol: %s v%d: tag %d used by %s and %s", s.name, v, f.TagID, prev, f.Name)
			}
			tags[f.TagID] = f.Name
			l.tagged = append(l.tagged, o)
			continue
		}
		l.inline = append(l.inline, o)
		l.minSize += o.minSize(l.flexible)
	}
	sort.Slice(l.tagged, func(i, j int) bool { return l.tagged[i].tag < l.tagged[j].tag })
	l.walk = mergeRuns(l.inline)
	for i := range l.walk {
		l.walk[i].setCode(l.flexible)
	}
	l.unset = append(l.unset, l.absent...)
	for _, o := range l.tagged {
		l.unset = append(l.unset, o.slot)
	}
	if !l.flexible {
		l.unset = append(l.unset, len(s.fields)) // no tag section
	}
	if l.flexible {
		l.minSize++ // the tag section's count
	}
	return l, nil
}

// minSize is the fewest bytes an inline field can occupy.
func (o *op) minSize(flexible bool) int {
	if n := o.kind.fixedSize(); n > 0 {
		return n
	}
	switch o.kind {
	case KindVarint, KindVarlong:
		return 1
	case KindString:
		if flexible {
			return 1
		}
		return 2
	case KindBytes, KindRecords, KindArray:
		if flexible {
			return 1
		}
		return 4
	case KindStruct:
		if o.nullable {
			return 1
		}
		return o.child.minSize
	}
	return 1
}

// elemMinSize is the fewest bytes an array element can occupy, at least 1
// so that a count can always be bounded by the bytes that remain.
func (o *op) elemMinSize(flexible bool) int {
	n := 1
	switch {
	case o.elem == KindStruct:
		n = o.child.minSize
	case o.elem.fixedSize() > 0:
		n = o.elem.fixedSize()
	case o.elem == KindString:
		if !flexible {
			n = 2
		}
	case o.elem == KindBytes:
		if !flexible {
			n = 4
		}
	}
	return max(n, 1)
}

// normalizeDefault converts a declared default to the Go type Record uses
// for the field's kind.
func normalizeDefault(f *schemaField) (any, error) {
	nullable := !f.NullableVersions.IsNever()
	if !f.HasDefault {
		switch f.Kind {
		case KindString:
			if nullable {
				return nil, nil
			}
			return "", nil
		case KindBytes, KindRecords, KindStruct:
			return nil, nil // null / empty; a struct default is its fields' defaults
		case KindArray:
			return nil, nil
		}
		return zeroOf(f.Kind), nil
	}
	v := f.DefaultValue
	if v == nil {
		if !nullable {
			return nil, fmt.Errorf("null default for a field that is never nullable")
		}
		return nil, nil
	}
	switch f.Kind {
	case KindBool:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case KindString:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case KindFloat64:
		switch x := v.(type) {
		case float64:
			return x, nil
		case int:
			return float64(x), nil
		}
	case KindInt8, KindInt16, KindUint16, KindInt32, KindUint32, KindInt64, KindVarint, KindVarlong:
		var n int64
		switch x := v.(type) {
		case int:
			n = int64(x)
		case int64:
			n = x
		default:
			return nil, fmt.Errorf("default %v (%T) is not an integer", v, v)
		}
		return intOf(f.Kind, n)
	}
	return nil, fmt.Errorf("default %v (%T) does not fit a %s", v, v, f.Kind)
}

func intOf(k Kind, n int64) (any, error) {
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	switch k {
	case KindInt8:
		lo, hi = math.MinInt8, math.MaxInt8
	case KindInt16:
		lo, hi = math.MinInt16, math.MaxInt16
	case KindUint16:
		lo, hi = 0, math.MaxUint16
	case KindInt32, KindVarint:
		lo, hi = math.MinInt32, math.MaxInt32
	case KindUint32:
		lo, hi = 0, math.MaxUint32
	}
	if n < lo || n > hi {
		return nil, fmt.Errorf("default %d overflows a %s", n, k)
	}
	switch k {
	case KindInt8:
		return int8(n), nil
	case KindInt16:
		return int16(n), nil
	case KindUint16:
		return uint16(n), nil
	case KindInt32, KindVarint:
		return int32(n), nil
	case KindUint32:
		return uint32(n), nil
	}
	return n, nil
}

func zeroOf(k Kind) any {
	switch k {
	case KindBool:
		return false
	case KindInt8:
		return int8(0)
	case KindInt16:
		return int16(0)
	case KindUint16:
		return uint16(0)
	case KindInt32, KindVarint:
		return int32(0)
	case KindUint32:
		return uint32(0)
	case KindInt64, KindVarlong:
		return int64(0)
	case KindFloat64:
		return float64(0)
	case KindUUID:
		return [16]byte{}
	case KindString:
		return ""
	}
	return nil
}

// run is a sequence of consecutive fixed-width fields, validated with one
// bounds check: the walk's fast path.
type run struct {
	size   int
	fields []runField
	ops    []op // the fields, for error messages
}

type runField struct {
	slot uint16
	off  uint16 // from the run's start
}

// mergeRuns replaces each sequence of two or more fixed-width fields with
// one run op.
func mergeRuns(ops []op) []op {
	var out []op
	for i := 0; i < len(ops); {
		j := i
		for j < len(ops) && ops[j].kind.fixedSize() > 0 {
			j++
		}
		if j-i < 2 {
			out = append(out, ops[i])
			i++
			continue
		}
		r := &run{ops: ops[i:j]}
		for _, o := range ops[i:j] {
			r.fields = append(r.fields, runField{slot: uint16(o.slot), off: uint16(r.size)})
			r.size += o.kind.fixedSize()
		}
		out = append(out, op{run: r, field: ops[i].field})
		i = j
	}
	return out
}

// walkCode selects the Decoder's inline fast path for a walk op; ops
// without one (and fast paths that meet anything unusual) go through
// walkField, which also reports errors.
type walkCode uint8

const (
	codeGeneral  walkCode = iota
	codeRun               // several fixed-width fields
	codeFixed             // one fixed-width field
	codeString16          // classic string: int16 length
	codeBytes32           // classic bytes or records: int32 length
	codeCompact           // compact string, bytes or records
	codeArray             // any array: null handled inline
)

func (o *op) setCode(flexible bool) {
	switch {
	case o.run != nil:
		o.code = codeRun
	case o.kind.fixedSize() > 0:
		o.code, o.width = codeFixed, uint8(o.kind.fixedSize())
	case o.kind == KindString || o.kind == KindBytes || o.kind == KindRecords:
		switch {
		case flexible:
			o.code = codeCompact
		case o.kind == KindString:
			o.code = codeString16
		default:
			o.code = codeBytes32
		}
	case o.kind == KindArray:
		o.code = codeArray
	}
}

// IndexEntriesPerByte bounds the Decoder's index: no declared message can
// make it hold more entries than this many per byte of the message, plus a
// constant (see IndexRatio), so a Decoder's memory is at most
// 4×IndexEntriesPerByte bytes per byte of input, whatever counts the input
// claims. A test checks every declared API against it; the worst today is
// 2.25 (CreateTopicsResponse v0), typical messages are far below 1.
const IndexEntriesPerByte = 3

// IndexRatio is the most index entries per byte of input that a message
// of s at version v can cost beyond a constant: the worst, over every array
// in the message, of an element's index entries (its block and the blocks
// of structs nested in it) divided by the element's smallest encoding. The
// message's top level and its nested structs outside arrays cost a
// constant.
func (s *Schema) IndexRatio(v int16) float64 {
	l, err := s.layout(v)
	if err != nil {
		return 0
	}
	return l.arrayRatio()
}

// arrayRatio is the worst element ratio of the arrays reachable from l.
func (l *layout) arrayRatio() float64 {
	worst := 0.0
	for _, o := range append(append([]op(nil), l.inline...), l.tagged...) {
		switch {
		case o.kind == KindArray && o.elem == KindStruct:
			entries, bytes := o.child.footprint()
			worst = max(worst, float64(entries)/float64(max(bytes, 1)), o.child.arrayRatio())
		case o.kind == KindArray && o.elem.fixedSize() == 0:
			worst = max(worst, 1) // one entry per element of at least a byte
		case o.kind == KindStruct:
			worst = max(worst, o.child.arrayRatio())
		}
	}
	return worst
}

// footprint is the index entries of one instance of l, nested structs
// included, and the fewest bytes such an instance takes. A tagged struct
// counts only when sent, with its tag and size bytes.
func (l *layout) footprint() (entries, bytes int) {
	entries, bytes = l.nslots+1, l.minSize
	for _, o := range l.inline {
		if o.kind == KindStruct {
			e, _ := o.child.footprint() // its bytes are in l.minSize
			entries += e
		}
	}
	for _, o := range l.tagged {
		if o.kind == KindStruct {
			e, b := o.child.footprint()
			entries, bytes = entries+e, bytes+b+2
		}
	}
	return entries, bytes
}
