package api

// Fuzz targets for the decoder of every declared message (STYLE.md, "Every
// decoder has a fuzz target; each crash it finds joins the corpus").
//
// FuzzDecode's input is one []byte: a three-byte header choosing the
// message, then the body.
//
//	data[0]  API key (0xff: kitchenSink, the test-only API below that
//	         declares every field kind the engine supports)
//	data[1]  version (inputs with a version the API lacks are skipped)
//	data[2]  bit 0: 0 request, 1 response
//	data[3:] the message body
//
// Keeping the selector inside the byte slice lets the mutator spend most of
// its effort on bodies, while a crasher file still says at a glance which
// message it is. Run it with
//
//	go test -run '^$' -fuzz '^FuzzDecode$' -fuzztime 120s ./protocol/api/
//
// The seed corpus (random messages of every API, version and direction,
// encoded by kmsg and by ktape) runs in the normal `go test`.

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/ktape/ktape/protocol"
)

// kitchenSinkKey selects kitchenSink in a fuzz header. It is not a Kafka key.
const kitchenSinkKey = 0xff

// kitchenSink is a test-only API that uses every kind, modifier and
// feature of the schema language, including those no Kafka API declared in
// this package uses yet (varints, floats, unsigned ints, nullable structs,
// arrays of every scalar kind, tagged structs and arrays), so that the
// fuzzer and the hostile-input tests reach every path of the engine.
// v0 is classic, v1+ flexible; v2 adds fields.
var kitchenSink = protocol.NewAPI(protocol.APIDef{
	Key: kitchenSinkKey, Name: "KitchenSink", MinVersion: 0, MaxVersion: 2, FlexibleVersion: 1,
	Request: []protocol.Field{
		protocol.Bool("Bool"),
		protocol.Int8("Int8"),
		protocol.Int16("Int16"),
		protocol.Uint16("Uint16"),
		protocol.Int32("Int32"),
		protocol.Uint32("Uint32"),
		protocol.Int64("Int64"),
		protocol.Float64("Float64"),
		protocol.UUID("UUID"),
		protocol.Varint("Varint"),
		protocol.Varlong("Varlong"),
		protocol.String("String"),
		protocol.String("NullableString").Nullable(),
		protocol.Bytes("Bytes"),
		protocol.Bytes("NullableBytes").NullableV(1),
		protocol.Records("Records"),
		protocol.Struct("Struct",
			protocol.Int32("A").Default(-1),
			protocol.String("B").V(1),
		),
		protocol.Struct("NullableStruct",
			protocol.Varint("V"),
			protocol.ArrayOf("Int16s", protocol.KindInt16),
		).Nullable(),
		protocol.Array("Structs",
			protocol.Int16("X"),
			protocol.Strings("Names"),
			protocol.Array("Inner",
				protocol.Varlong("L"),
				protocol.Struct("Deep", protocol.Int8("D")).Nullable(),
			).Nullable(),
		).NullableV(1),
		protocol.ArrayOf("Bools", protocol.KindBool),
		protocol.ArrayOf("Int8s", protocol.KindInt8),
		protocol.ArrayOf("Int16s", protocol.KindInt16),
		protocol.ArrayOf("Uint16s", protocol.KindUint16),
		protocol.Int32s("Int32s"),
		protocol.ArrayOf("Uint32s", protocol.KindUint32),
		protocol.Int64s("Int64s"),
		protocol.ArrayOf("Float64s", protocol.KindFloat64),
		protocol.UUIDs("UUIDs"),
		protocol.ArrayOf("Varints", protocol.KindVarint),
		protocol.ArrayOf("Varlongs", protocol.KindVarlong),
		protocol.Strings("Strings").Nullable(),
		protocol.ArrayOf("Bytess", protocol.KindBytes),
		protocol.Int32("V2Only").V(2).Default(7),
		protocol.String("TaggedString").Nullable().Default(nil).Tag(0),
		protocol.Struct("TaggedStruct",
			protocol.Int32("A").Default(-1),
			protocol.String("B").Tag(0),
		).Tag(1),
		protocol.Array("TaggedArray", protocol.Int32("N")).Tag(2),
		protocol.Int64("TaggedInt64").Default(-1).Tag(3),
		protocol.Varint("TaggedVarint").V(2).Tag(5),
	},
	Response: []protocol.Field{
		protocol.Int32("ThrottleTimeMs"),
		protocol.Array("Topics",
			protocol.String("Name").NullableV(2),
			protocol.Array("Partitions",
				protocol.Int32("Index"),
				protocol.Struct("Leader",
					protocol.Int32("Id").Default(-1),
					protocol.Int32("Epoch").Default(-1),
				).Nullable(),
				protocol.Records("Records"),
				protocol.Struct("Tagged", protocol.Int64("X").Default(-1)).Tag(7),
			),
		),
		protocol.Int16("ErrorCode").V(1),
	},
})

// fuzzAPI returns the API for a fuzz header's key byte, or nil.
func fuzzAPI(key byte) *protocol.API {
	if key == kitchenSinkKey {
		return kitchenSink
	}
	return ByKey(int16(key))
}

// fuzzInput builds a FuzzDecode input.
func fuzzInput(a *protocol.API, v int16, request bool, body []byte) []byte {
	dir := byte(1)
	if request {
		dir = 0
	}
	return append([]byte{byte(a.Key), byte(v), dir}, body...)
}

// fuzzSeeds returns, for every version and direction of a, n messages
// encoded by kmsg from random fills (Kafka APIs only) and n encoded by
// ktape from random Records, as bodies with their version.
func fuzzSeeds(a *protocol.API, request bool, n int) (versions []int16, bodies [][]byte) {
	s := schemaOf(a, request)
	rng := rand.New(rand.NewSource(7000 + int64(a.Key)*2 + boolInt(request)))
	for v := a.MinVersion; v <= a.MaxVersion; v++ {
		for i := 0; i < n; i++ {
			if a != kitchenSink {
				m := kmsgFor(a.Key, request)
				fillKmsg(reflect.ValueOf(m).Elem(), rng, true)
				m.SetVersion(v)
				versions, bodies = append(versions, v), append(bodies, m.AppendTo(nil))
			}
			b, err := randomRecord(s, v, rng, 0).AppendTo(nil, v)
			if err != nil {
				panic(fmt.Sprintf("%s v%d: encoding a random record: %v", s.Name(), v, err))
			}
			versions, bodies = append(versions, v), append(bodies, b)
		}
	}
	return versions, bodies
}

// fuzzSeedsPerVersion is how many messages from each encoder seed each
// (API, version, direction). With 34 APIs it makes about 3,600 seeds,
// which the normal test run goes through in about half a second.
const fuzzSeedsPerVersion = 2

func addSeeds(f *testing.F, a *protocol.API, request bool, withHeader bool) {
	versions, bodies := fuzzSeeds(a, request, fuzzSeedsPerVersion)
	for i, b := range bodies {
		if withHeader {
			f.Add(fuzzInput(a, versions[i], request, b))
		} else {
			f.Add(append([]byte{byte(versions[i])}, b...))
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, a := range append(All[:len(All):len(All)], kitchenSink) {
		for _, request := range []bool{true, false} {
			addSeeds(f, a, request, true)
		}
	}
	// A few bodies no encoder writes: empty, all-ones, truncated counts.
	for _, a := range []*protocol.API{Produce, Fetch, Metadata, ApiVersions, kitchenSink} {
		for _, request := range []bool{true, false} {
			f.Add(fuzzInput(a, a.MaxVersion, request, nil))
			f.Add(fuzzInput(a, a.MinVersion, request, bytes.Repeat([]byte{0xff}, 40)))
			f.Add(fuzzInput(a, a.MaxVersion, request, []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x01}))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 3 {
			return
		}
		a := fuzzAPI(data[0])
		if a == nil || !a.Supports(int16(data[1])) {
			return
		}
		checkDecode(t, schemaOf(a, data[2]&1 == 0), int16(data[1]), data[3:])
	})
}

// FuzzDecodeFetchResponse and FuzzDecodeProduceRequest focus on the two
// messages of the data path. Input: data[0] is the version, the rest the
// body.
func FuzzDecodeFetchResponse(f *testing.F) {
	addSeeds(f, Fetch, false, false)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 1 || !Fetch.Supports(int16(data[0])) {
			return
		}
		checkDecode(t, Fetch.Response, int16(data[0]), data[1:])
	})
}

func FuzzDecodeProduceRequest(f *testing.F) {
	addSeeds(f, Produce, true, false)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 1 || !Produce.Supports(int16(data[0])) {
			return
		}
		checkDecode(t, Produce.Request, int16(data[0]), data[1:])
	})
}

// checkDecode checks every property the engine promises for one input:
//   - no panic;
//   - the zero-copy Decoder and the owned-Record Decode agree on success;
//   - what ktape accepts, kmsg accepts and reads to the same values;
//   - a failure is a *protocol.DecodeError naming the schema, version, a
//     field path that exists and an offset inside the body;
//   - on success every accessor of the view works and reads what the
//     Record holds; in-place setters write where the getters read;
//   - the Record re-encodes, Size is the encoded length, the re-encoded
//     bytes decode to the same values and re-encode to themselves;
//   - a Decoder reused after another message reads the same.
func checkDecode(t *testing.T, s *protocol.Schema, v int16, body []byte) {
	t.Helper()
	orig := append([]byte(nil), body...)
	defer func() {
		if !bytes.Equal(body, orig) {
			t.Errorf("%s v%d: decoding modified the input", s.Name(), v)
		}
	}()

	var d protocol.Decoder
	view, verr := d.Decode(s, v, body)
	rec, rerr := protocol.Decode(s, v, body)
	if (verr == nil) != (rerr == nil) {
		t.Fatalf("%s v%d: Decoder.Decode error %v, Decode error %v", s.Name(), v, verr, rerr)
	}
	if verr != nil {
		checkDecodeError(t, s, v, body, verr)
		checkDecodeError(t, s, v, body, rerr)
		if verr.Error() != rerr.Error() {
			t.Fatalf("errors differ:\n%v\n%v", verr, rerr)
		}
		return
	}

	checkAgainstKmsg(t, s, v, body, rec)

	got := dumpView(t, view)
	if want := dumpRecord(rec, v, false); got != want {
		t.Fatalf("%s v%d: view and Record disagree:\nview   %s\nrecord %s", s.Name(), v, got, want)
	}

	// Setters: on a private copy, flip every int16/int32/int64 on the wire
	// and back; the getter must see each write, and the copy end unchanged.
	cp := append([]byte(nil), body...)
	var d2 protocol.Decoder
	cv, err := d2.Decode(s, v, cp)
	if err != nil {
		t.Fatalf("%s v%d: decoding a copy: %v", s.Name(), v, err)
	}
	exerciseSetters(t, cv)
	if !bytes.Equal(cp, body) {
		t.Fatalf("%s v%d: setters did not restore the message", s.Name(), v)
	}

	// Re-encode, then decode and re-encode again: a fixed point.
	out1, err := rec.AppendTo(nil, v)
	if err != nil {
		t.Fatalf("%s v%d: decoded, but re-encoding fails: %v\nbody %x", s.Name(), v, err, body)
	}
	if n := rec.Size(v); n != len(out1) {
		t.Fatalf("%s v%d: Size %d, AppendTo wrote %d bytes", s.Name(), v, n, len(out1))
	}
	prefix := []byte("prefix")
	if withPrefix, err := rec.AppendTo(prefix[:len(prefix):len(prefix)], v); err != nil ||
		!bytes.Equal(withPrefix[:len(prefix)], prefix) || !bytes.Equal(withPrefix[len(prefix):], out1) {
		t.Fatalf("%s v%d: AppendTo onto a non-empty buffer: %v", s.Name(), v, err)
	}
	rec2, err := protocol.Decode(s, v, out1)
	if err != nil {
		t.Fatalf("%s v%d: re-encoded message does not decode: %v\nbody      %x\nre-encoded %x", s.Name(), v, err, body, out1)
	}
	out2, err := rec2.AppendTo(nil, v)
	if err != nil {
		t.Fatalf("%s v%d: second re-encoding fails: %v", s.Name(), v, err)
	}
	if !bytes.Equal(out1, out2) {
		t.Fatalf("%s v%d: re-encoding is not idempotent:\nbody %x\nout1 %x\nout2 %x", s.Name(), v, body, out1, out2)
	}
	if n := rec2.Size(v); n != len(out2) {
		t.Fatalf("%s v%d: Size %d of the re-decoded Record, AppendTo wrote %d bytes", s.Name(), v, n, len(out2))
	}
	if a, b := dumpRecord(rec, v, true), dumpRecord(rec2, v, true); a != b {
		t.Fatalf("%s v%d: re-encoding changed the message:\nbody %x\nout1 %x\nbefore %s\nafter  %s", s.Name(), v, body, out1, a, b)
	}

	// Reuse: the same Decoder, after a different message, reads the same.
	if _, err := d.Decode(s, v, out1); err != nil {
		t.Fatalf("%s v%d: reused Decoder: %v", s.Name(), v, err)
	}
	again, err := d.Decode(s, v, body)
	if err != nil {
		t.Fatalf("%s v%d: reused Decoder rejects what it accepted: %v", s.Name(), v, err)
	}
	if g := dumpView(t, again); g != got {
		t.Fatalf("%s v%d: reused Decoder reads differently:\nfirst %s\nagain %s", s.Name(), v, got, g)
	}
}

// checkAgainstKmsg: whatever ktape accepts, franz-go's kmsg, an
// independent decoder, must accept too and read to the same values. (The
// converse need not hold: kmsg ignores trailing bytes, tag order and
// duplicate tags, which ktape rejects.)
func checkAgainstKmsg(t *testing.T, s *protocol.Schema, v int16, body []byte, rec *protocol.Record) {
	t.Helper()
	a := s.API()
	if a == kitchenSink || hasUnknownTags(rec) {
		// kmsg reads some tags in every flexible version that Kafka and
		// ktape declare only from a later one (FetchRequest's ReplicaState
		// is v15+, kmsg reads it from v12; ProduceResponse's CurrentLeader
		// v10+, kmsg from v9): bytes that are an unknown tag to ktape may
		// not parse as kmsg's field, and can send kmsg into a loop of 2^32
		// iterations over a garbage tag count (seconds per input).
		return
	}
	m := kmsgFor(a.Key, s == a.Request)
	m.SetVersion(v)
	if err := m.ReadFrom(body); err != nil {
		var d protocol.Decoder
		if view, _ := d.Decode(s, v, body); hasLenientNull(view) {
			return // ktape reads a null where none is allowed as empty; kmsg refuses it
		}
		t.Fatalf("%s v%d: ktape decodes, kmsg rejects: %v\nbody %x", s.Name(), v, err, body)
	}
	if err := compareRecord(rec, reflect.ValueOf(m).Elem(), v, s.Name()); err != nil {
		t.Fatalf("%s v%d: ktape and kmsg read different values: %v\nbody %x", s.Name(), v, err, body)
	}
}

// hasUnknownTags reports whether r or any struct in it holds tagged
// fields its schema does not declare at the decoded version.
func hasUnknownTags(r *protocol.Record) bool {
	if r == nil {
		return false
	}
	if len(r.UnknownTags()) > 0 {
		return true
	}
	s := r.Schema()
	for i := 0; i < s.NumFields(); i++ {
		switch x := r.Get(s.Handle(s.Field(i).Name)).(type) {
		case *protocol.Record:
			if hasUnknownTags(x) {
				return true
			}
		case []*protocol.Record:
			for _, e := range x {
				if hasUnknownTags(e) {
					return true
				}
			}
		}
	}
	return false
}

// hasLenientNull reports whether a string or bytes field that is not
// nullable, or an element of a string array, is null on the wire: ktape
// accepts that (some brokers send it) and reads it as empty.
func hasLenientNull(v protocol.View) bool {
	s, ver := v.Schema(), v.Version()
	for i := 0; i < s.NumFields(); i++ {
		f := s.Field(i)
		h := s.Handle(f.Name)
		if !v.Has(h) {
			continue
		}
		switch f.Kind {
		case protocol.KindString, protocol.KindBytes:
			if !f.NullableVersions.Contains(ver) && v.IsNull(h) {
				return true
			}
		case protocol.KindStruct:
			if sv, ok := v.Struct(h); ok && hasLenientNull(sv) {
				return true
			}
		case protocol.KindArray:
			av := v.Array(h)
			for j := 0; j < av.Len(); j++ {
				switch f.Elem {
				case protocol.KindStruct:
					if hasLenientNull(av.At(j)) {
						return true
					}
				case protocol.KindString:
					if av.StringBytesAt(j) == nil {
						return true
					}
				}
			}
		}
	}
	return false
}

var pathRE = regexp.MustCompile(`^([A-Z][A-Za-z0-9]*(\[[0-9]+\])*(\.[A-Z][A-Za-z0-9]*(\[[0-9]+\])*)*)?$`)

// checkDecodeError checks that err is a *protocol.DecodeError that says
// which message, which field and where.
func checkDecodeError(t *testing.T, s *protocol.Schema, v int16, body []byte, err error) {
	t.Helper()
	de, ok := err.(*protocol.DecodeError)
	if !ok {
		var as *protocol.DecodeError
		t.Fatalf("%s v%d: error is a %T, not a *protocol.DecodeError (errors.As: %v): %v", s.Name(), v, err, errors.As(err, &as), err)
	}
	if de.Schema != s.Name() || de.Version != v {
		t.Fatalf("error names %s v%d, want %s v%d: %v", de.Schema, de.Version, s.Name(), v, err)
	}
	msg := err.Error()
	if !strings.Contains(msg, s.Name()) || !strings.Contains(msg, fmt.Sprintf("v%d", v)) {
		t.Fatalf("error message does not name %s v%d: %s", s.Name(), v, msg)
	}
	if de.Offset < 0 || de.Offset > len(body) {
		t.Fatalf("error offset %d outside [0, %d]: %v", de.Offset, len(body), err)
	}
	if de.Reason == "" {
		t.Fatalf("error without a reason: %v", err)
	}
	if !pathRE.MatchString(de.Path) {
		t.Fatalf("malformed error path %q: %v", de.Path, err)
	}
	if perr := resolvePath(s, v, de.Path); perr != nil {
		t.Fatalf("error path %q: %v: %v", de.Path, perr, err)
	}
}

// resolvePath checks that every name in an error path is a field on the
// wire at version v, and that [i] follows only arrays.
func resolvePath(s *protocol.Schema, v int16, path string) error {
	if path == "" {
		return nil
	}
	for _, part := range strings.Split(path, ".") {
		name, idx, _ := strings.Cut(part, "[")
		h, ok := s.Lookup(name)
		if !ok {
			return fmt.Errorf("%s has no field %s", s.Name(), name)
		}
		f := s.Field(fieldIndex(s, name))
		if !f.Versions.Contains(v) {
			return fmt.Errorf("%s.%s is not in v%d", s.Name(), name, v)
		}
		if idx != "" && h.Kind() != protocol.KindArray {
			return fmt.Errorf("%s.%s is indexed but is a %s", s.Name(), name, h.Kind())
		}
		if c := s.Child(h); c != nil {
			s = c
		}
	}
	return nil
}

func fieldIndex(s *protocol.Schema, name string) int {
	for i := 0; i < s.NumFields(); i++ {
		if s.Field(i).Name == name {
			return i
		}
	}
	return -1
}

// dumpView walks every field of a view, through every accessor that
// applies to its kind, and renders the values. It fails t if accessors
// disagree with each other.
func dumpView(t *testing.T, v protocol.View) string {
	var sb strings.Builder
	walkView(t, &sb, v, v.Schema().Name())
	return sb.String()
}

func walkView(t *testing.T, sb *strings.Builder, v protocol.View, path string) {
	t.Helper()
	if !v.Valid() {
		t.Fatalf("%s: invalid view", path)
	}
	s, ver := v.Schema(), v.Version()
	sb.WriteByte('{')
	for i := 0; i < s.NumFields(); i++ {
		f := s.Field(i)
		h := s.Handle(f.Name)
		if h.Kind() != f.Kind || h.Name() != f.Name {
			t.Fatalf("%s.%s: handle says %s %s", path, f.Name, h.Kind(), h.Name())
		}
		p := path + "." + f.Name
		nullable := f.NullableVersions.Contains(ver)
		has := v.Has(h)
		if has && !f.Versions.Contains(ver) {
			t.Fatalf("%s: Has, but the field is not in v%d", p, ver)
		}
		isNull := v.IsNull(h)
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(f.Name)
		sb.WriteByte('=')
		switch f.Kind {
		case protocol.KindBool:
			fmt.Fprint(sb, v.Bool(h))
		case protocol.KindInt8:
			fmt.Fprint(sb, v.Int8(h))
		case protocol.KindInt16:
			fmt.Fprint(sb, v.Int16(h))
		case protocol.KindUint16:
			fmt.Fprint(sb, v.Uint16(h))
		case protocol.KindInt32:
			fmt.Fprint(sb, v.Int32(h))
		case protocol.KindUint32:
			fmt.Fprint(sb, v.Uint32(h))
		case protocol.KindInt64:
			fmt.Fprint(sb, v.Int64(h))
		case protocol.KindFloat64:
			fmt.Fprintf(sb, "%x", math.Float64bits(v.Float64(h)))
		case protocol.KindUUID:
			fmt.Fprintf(sb, "%x", v.UUID(h))
		case protocol.KindVarint:
			fmt.Fprint(sb, v.Varint(h))
		case protocol.KindVarlong:
			fmt.Fprint(sb, v.Varlong(h))
		case protocol.KindString:
			b := v.StringBytes(h)
			if str := v.String(h); str != string(b) {
				t.Fatalf("%s: String %q, StringBytes %q", p, str, b)
			}
			if us := v.UnsafeString(h); us != string(b) {
				t.Fatalf("%s: UnsafeString %q, StringBytes %q", p, us, b)
			}
			if has && isNull != (b == nil) {
				t.Fatalf("%s: IsNull %v, but StringBytes is %q (nil: %v)", p, isNull, b, b == nil)
			}
			writeString(sb, b, nullable)
		case protocol.KindBytes, protocol.KindRecords:
			var b []byte
			if f.Kind == protocol.KindRecords {
				b = v.Records(h)
			} else {
				b = v.Bytes(h)
			}
			if cap(b) != len(b) {
				t.Fatalf("%s: Bytes has capacity %d beyond its length %d: appends would overwrite the message", p, cap(b), len(b))
			}
			if has && isNull != (b == nil) {
				t.Fatalf("%s: IsNull %v, but Bytes is %x (nil: %v)", p, isNull, b, b == nil)
			}
			writeBytes(sb, b, nullable)
		case protocol.KindStruct:
			sv, ok := v.Struct(h)
			if has && ok == isNull {
				t.Fatalf("%s: Struct ok %v, IsNull %v", p, ok, isNull)
			}
			if nullable && isNull {
				sb.WriteString("null")
				var discard strings.Builder
				walkView(t, &discard, sv, p) // a null struct's view reads defaults
				break
			}
			walkView(t, sb, sv, p)
		case protocol.KindArray:
			av := v.Array(h)
			if av.IsNull() != isNull {
				t.Fatalf("%s: ArrayView.IsNull %v, View.IsNull %v", p, av.IsNull(), isNull)
			}
			if av.IsNull() && av.Len() != 0 {
				t.Fatalf("%s: null array of length %d", p, av.Len())
			}
			if nullable && av.IsNull() {
				sb.WriteString("null")
				break
			}
			sb.WriteByte('[')
			for j := 0; j < av.Len(); j++ {
				if j > 0 {
					sb.WriteByte(' ')
				}
				ep := fmt.Sprintf("%s[%d]", p, j)
				switch f.Elem {
				case protocol.KindStruct:
					walkView(t, sb, av.At(j), ep)
				case protocol.KindInt16:
					fmt.Fprint(sb, av.Int16At(j))
				case protocol.KindInt32:
					fmt.Fprint(sb, av.Int32At(j))
				case protocol.KindInt64:
					fmt.Fprint(sb, av.Int64At(j))
				case protocol.KindUUID:
					fmt.Fprintf(sb, "%x", av.UUIDAt(j))
				case protocol.KindString:
					writeString(sb, av.StringBytesAt(j), false)
				default:
					sb.WriteByte('?') // no ArrayView accessor for this kind
				}
			}
			sb.WriteByte(']')
		default:
			t.Fatalf("%s: unknown kind %s", p, f.Kind)
		}
	}
	sb.WriteByte('}')
}

func writeString(sb *strings.Builder, b []byte, nullable bool) {
	if nullable && b == nil {
		sb.WriteString("null")
		return
	}
	fmt.Fprintf(sb, "%q", b)
}

func writeBytes(sb *strings.Builder, b []byte, nullable bool) {
	if nullable && b == nil {
		sb.WriteString("null")
		return
	}
	fmt.Fprintf(sb, "0x%x", b)
}

// dumpRecord renders a Record like dumpView renders a view. With full
// set it also renders what views cannot read (elements of arrays of kinds
// without an ArrayView accessor, unknown tags).
func dumpRecord(r *protocol.Record, v int16, full bool) string {
	var sb strings.Builder
	walkRecord(&sb, r.Schema(), r, v, full)
	return sb.String()
}

func walkRecord(sb *strings.Builder, s *protocol.Schema, r *protocol.Record, ver int16, full bool) {
	if r == nil {
		r = protocol.NewRecord(s) // a non-nullable struct left unset: its defaults
	}
	sb.WriteByte('{')
	for i := 0; i < s.NumFields(); i++ {
		f := s.Field(i)
		h := s.Handle(f.Name)
		nullable := f.NullableVersions.Contains(ver)
		x := r.Get(h)
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(f.Name)
		sb.WriteByte('=')
		switch f.Kind {
		case protocol.KindString:
			str, ok := x.(string)
			if !ok && x != nil {
				fmt.Fprintf(sb, "!%T", x)
				break
			}
			if nullable && !ok {
				sb.WriteString("null")
				break
			}
			fmt.Fprintf(sb, "%q", str)
		case protocol.KindBytes, protocol.KindRecords:
			b, ok := x.([]byte)
			if !ok && x != nil {
				fmt.Fprintf(sb, "!%T", x)
				break
			}
			writeBytes(sb, b, nullable)
		case protocol.KindStruct:
			c, ok := x.(*protocol.Record)
			if !ok && x != nil {
				fmt.Fprintf(sb, "!%T", x)
				break
			}
			if c == nil && nullable && (!f.HasDefault || f.DefaultValue == nil) {
				sb.WriteString("null")
				break
			}
			walkRecord(sb, s.Child(h), c, ver, full)
		case protocol.KindArray:
			if x == nil || reflect.ValueOf(x).IsNil() {
				if nullable {
					sb.WriteString("null")
				} else {
					sb.WriteString("[]")
				}
				break
			}
			rv := reflect.ValueOf(x)
			sb.WriteByte('[')
			for j := 0; j < rv.Len(); j++ {
				if j > 0 {
					sb.WriteByte(' ')
				}
				e := rv.Index(j).Interface()
				switch f.Elem {
				case protocol.KindStruct:
					walkRecord(sb, s.Child(h), e.(*protocol.Record), ver, full)
				case protocol.KindInt16, protocol.KindInt32, protocol.KindInt64, protocol.KindUUID, protocol.KindString:
					writeScalar(sb, f.Elem, e)
				default:
					if !full {
						sb.WriteByte('?')
						break
					}
					writeScalar(sb, f.Elem, e)
				}
			}
			sb.WriteByte(']')
		default:
			writeScalar(sb, f.Kind, x)
		}
	}
	if full && len(r.UnknownTags()) > 0 {
		fmt.Fprintf(sb, " unknown=%x", r.UnknownTags())
	}
	sb.WriteByte('}')
}

// writeScalar renders a scalar as walkView does, and marks a value whose
// Go type is not the one Record documents for the kind.
func writeScalar(sb *strings.Builder, k protocol.Kind, x any) {
	want := map[protocol.Kind]reflect.Type{
		protocol.KindBool: reflect.TypeFor[bool](), protocol.KindInt8: reflect.TypeFor[int8](),
		protocol.KindInt16: reflect.TypeFor[int16](), protocol.KindUint16: reflect.TypeFor[uint16](),
		protocol.KindInt32: reflect.TypeFor[int32](), protocol.KindVarint: reflect.TypeFor[int32](),
		protocol.KindUint32: reflect.TypeFor[uint32](), protocol.KindInt64: reflect.TypeFor[int64](),
		protocol.KindVarlong: reflect.TypeFor[int64](), protocol.KindFloat64: reflect.TypeFor[float64](),
		protocol.KindUUID: reflect.TypeFor[[16]byte](), protocol.KindString: reflect.TypeFor[string](),
		protocol.KindBytes: reflect.TypeFor[[]byte](),
	}[k]
	if reflect.TypeOf(x) != want {
		if k == protocol.KindBytes && x == nil {
			sb.WriteString("null")
			return
		}
		fmt.Fprintf(sb, "!%T", x)
		return
	}
	switch x := x.(type) {
	case float64:
		fmt.Fprintf(sb, "%x", math.Float64bits(x))
	case [16]byte:
		fmt.Fprintf(sb, "%x", x)
	case string:
		fmt.Fprintf(sb, "%q", x)
	case []byte:
		if x == nil {
			sb.WriteString("null")
		} else {
			fmt.Fprintf(sb, "0x%x", x)
		}
	default:
		fmt.Fprint(sb, x)
	}
}

// exerciseSetters flips every int16, int32 and int64 field on the wire
// and restores it, checking that the getter reads each write.
func exerciseSetters(t *testing.T, v protocol.View) {
	t.Helper()
	s := v.Schema()
	for i := 0; i < s.NumFields(); i++ {
		f := s.Field(i)
		h := s.Handle(f.Name)
		switch f.Kind {
		case protocol.KindInt16:
			if v.Has(h) {
				old := v.Int16(h)
				v.SetInt16(h, ^old)
				if got := v.Int16(h); got != ^old {
					t.Fatalf("%s.%s: SetInt16(%d), then read %d", s.Name(), f.Name, ^old, got)
				}
				v.SetInt16(h, old)
			}
		case protocol.KindInt32:
			if v.Has(h) {
				old := v.Int32(h)
				v.SetInt32(h, ^old)
				if got := v.Int32(h); got != ^old {
					t.Fatalf("%s.%s: SetInt32(%d), then read %d", s.Name(), f.Name, ^old, got)
				}
				v.SetInt32(h, old)
			}
		case protocol.KindInt64:
			if v.Has(h) {
				old := v.Int64(h)
				v.SetInt64(h, ^old)
				if got := v.Int64(h); got != ^old {
					t.Fatalf("%s.%s: SetInt64(%d), then read %d", s.Name(), f.Name, ^old, got)
				}
				v.SetInt64(h, old)
			}
		case protocol.KindStruct:
			if sv, ok := v.Struct(h); ok && v.Has(h) {
				exerciseSetters(t, sv)
			}
		case protocol.KindArray:
			if f.Elem == protocol.KindStruct {
				av := v.Array(h)
				for j := 0; j < av.Len(); j++ {
					exerciseSetters(t, av.At(j))
				}
			}
		}
	}
}
