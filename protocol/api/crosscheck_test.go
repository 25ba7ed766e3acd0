package api

// Differential tests against franz-go's kmsg, an independent implementation
// of the same protocol: every version of every declared API, requests and
// responses, in both directions, byte for byte and field by field.

import (
	"bytes"
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"testing"

	"github.com/ktape/ktape/protocol"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// messagesPerVersion is how many random messages each (API, version,
// direction, request/response) combination is checked with.
const messagesPerVersion = 100

type kmsgMessage interface {
	SetVersion(int16)
	AppendTo([]byte) []byte
	ReadFrom([]byte) error
	Key() int16
	MaxVersion() int16
}

func kmsgFor(key int16, request bool) kmsgMessage {
	if request {
		return kmsg.RequestForKey(key)
	}
	return kmsg.ResponseForKey(key)
}

func TestAPIsMatchKmsgVersions(t *testing.T) {
	for _, a := range All {
		if m := kmsg.RequestForKey(a.Key); m == nil {
			t.Errorf("%s: kmsg has no key %d", a.Name, a.Key)
		} else if m.MaxVersion() != a.MaxVersion {
			t.Errorf("%s: max version %d, kmsg %d", a.Name, a.MaxVersion, m.MaxVersion())
		}
		if f := kmsg.RequestForKey(a.Key); f != nil {
			for v := a.MinVersion; v <= a.MaxVersion; v++ {
				f.SetVersion(v)
				if f.IsFlexible() != a.IsFlexible(v) {
					t.Errorf("%s v%d: flexible %v, kmsg %v", a.Name, v, a.IsFlexible(v), f.IsFlexible())
				}
			}
		}
	}
}

// TestCrossCheckFromKmsg: random kmsg messages, encoded by kmsg, must
// decode with ktape to the same field values and re-encode to the same bytes.
func TestCrossCheckFromKmsg(t *testing.T) {
	for _, a := range All {
		for _, request := range []bool{true, false} {
			s := schemaOf(a, request)
			t.Run(s.Name(), func(t *testing.T) {
				t.Parallel()
				rng := rand.New(rand.NewSource(int64(a.Key)*2 + boolInt(request)))
				for v := a.MinVersion; v <= a.MaxVersion; v++ {
					for i := 0; i < messagesPerVersion; i++ {
						m := kmsgFor(a.Key, request)
						fillKmsg(reflect.ValueOf(m).Elem(), rng, true)
						m.SetVersion(v)
						b1 := m.AppendTo(nil)
						if err := checkFromBytes(s, v, b1); err != nil {
							t.Fatalf("v%d message %d: %v\nbytes %x", v, i, err, b1)
						}
					}
				}
			})
		}
	}
}

// TestCrossCheckToKmsg: random ktape Records, encoded by ktape, must be read
// by kmsg to the same field values and re-encoded by kmsg to the same bytes.
func TestCrossCheckToKmsg(t *testing.T) {
	for _, a := range All {
		for _, request := range []bool{true, false} {
			s := schemaOf(a, request)
			t.Run(s.Name(), func(t *testing.T) {
				t.Parallel()
				rng := rand.New(rand.NewSource(1000 + int64(a.Key)*2 + boolInt(request)))
				for v := a.MinVersion; v <= a.MaxVersion; v++ {
					for i := 0; i < messagesPerVersion; i++ {
						r := randomRecord(s, v, rng, 0)
						b1, err := r.AppendTo(nil, v)
						if err != nil {
							t.Fatalf("v%d message %d: ktape encode: %v", v, i, err)
						}
						if n := r.Size(v); n != len(b1) {
							t.Fatalf("v%d message %d: Size %d, encoded %d bytes", v, i, n, len(b1))
						}
						if err := checkFromBytes(s, v, b1); err != nil {
							t.Fatalf("v%d message %d: %v\nbytes %x", v, i, err, b1)
						}
					}
				}
			})
		}
	}
}

// checkFromBytes decodes b with kmsg and with ktape, compares every field,
// and checks that both re-encode b exactly.
func checkFromBytes(s *protocol.Schema, v int16, b []byte) error {
	a := s.API()
	request := s == a.Request
	m := kmsgFor(a.Key, request)
	m.SetVersion(v)
	if err := m.ReadFrom(b); err != nil {
		return fmt.Errorf("kmsg decode: %w", err)
	}
	if again := m.AppendTo(nil); !bytes.Equal(again, b) {
		return fmt.Errorf("kmsg re-encode differs:\n got %x", again)
	}
	r, err := protocol.Decode(s, v, b)
	if err != nil {
		return fmt.Errorf("ktape decode: %w", err)
	}
	if err := compareRecord(r, reflect.ValueOf(m).Elem(), v, s.Name()); err != nil {
		return err
	}
	out, err := r.AppendTo(nil, v)
	if err != nil {
		return fmt.Errorf("ktape encode: %w", err)
	}
	if !bytes.Equal(out, b) {
		return fmt.Errorf("ktape re-encode differs:\n got %x", out)
	}
	if n := r.Size(v); n != len(b) {
		return fmt.Errorf("ktape Size %d, want %d", n, len(b))
	}
	return nil
}

func schemaOf(a *protocol.API, request bool) *protocol.Schema {
	if request {
		return a.Request
	}
	return a.Response
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// kmsgFields returns the wire fields of a kmsg struct, in order: every
// exported field except the message's Version and the UnknownTags holder.
func kmsgFields(v reflect.Value) []reflect.Value {
	var out []reflect.Value
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() || f.Name == "Version" || f.Name == "UnknownTags" {
			continue
		}
		out = append(out, v.Field(i))
	}
	return out
}

func kmsgFieldNames(v reflect.Value) []string {
	var out []string
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.IsExported() && f.Name != "Version" && f.Name != "UnknownTags" {
			out = append(out, f.Name)
		}
	}
	return out
}

// kmsgOrder maps, for structs where Kafka's spec and kmsg declare fields in
// a different order, each ktape field index to kmsg's. Only fields that are
// never on the wire in the same version are ordered differently, so the
// bytes agree; the field-by-field comparison needs the map.
var kmsgOrder = map[string][]int{
	"DeleteTopicsRequest":                   {1, 0, 2},
	"AddPartitionsToTxnRequest":             {4, 0, 1, 2, 3},
	"OffsetCommitRequest.Topics.Partitions": {0, 1, 3, 2, 4},
}

// compareRecord compares a ktape Record with a kmsg struct positionally,
// for the fields on the wire at version v.
func compareRecord(r *protocol.Record, k reflect.Value, v int16, path string) error {
	s := r.Schema()
	kf := kmsgFields(k)
	if order, ok := kmsgOrder[s.Name()]; ok && len(order) == len(kf) {
		reordered := make([]reflect.Value, len(kf))
		for i, j := range order {
			reordered[i] = kf[j]
		}
		kf = reordered
	}
	if len(kf) != s.NumFields() {
		var ours []string
		for i := 0; i < s.NumFields(); i++ {
			ours = append(ours, s.Field(i).Name)
		}
		return fmt.Errorf("%s: %d fields %v; kmsg has %d %v", path, s.NumFields(), ours, len(kf), kmsgFieldNames(k))
	}
	for i := 0; i < s.NumFields(); i++ {
		f := s.Field(i)
		if !f.Versions.Contains(v) {
			continue
		}
		p := path + "." + f.Name
		h := s.Handle(f.Name)
		ours := r.Get(h)
		if f.Kind == protocol.KindStruct && ours == nil && !f.NullableVersions.Contains(v) {
			ours = protocol.NewRecord(s.Child(h)) // unset: all defaults
		}
		if err := compareValue(f, ours, kf[i], v, p); err != nil {
			return err
		}
	}
	return nil
}

func compareValue(f protocol.Field, ours any, k reflect.Value, v int16, path string) error {
	nullable := f.NullableVersions.Contains(v)
	mismatch := func() error { return fmt.Errorf("%s: ktape %#v, kmsg %#v", path, ours, k.Interface()) }
	switch f.Kind {
	case protocol.KindStruct:
		if k.Kind() == reflect.Pointer {
			if k.IsNil() != (ours == nil) {
				return mismatch()
			}
			if k.IsNil() {
				return nil
			}
			k = k.Elem()
		}
		rec, _ := ours.(*protocol.Record)
		if rec == nil {
			return fmt.Errorf("%s: ktape struct is nil", path)
		}
		return compareRecord(rec, k, v, path)
	case protocol.KindArray:
		if k.Kind() != reflect.Slice {
			return fmt.Errorf("%s: kmsg field is a %s, not a slice", path, k.Kind())
		}
		n := arrayLenOf(ours)
		if nullable && (n < 0) != k.IsNil() {
			return mismatch()
		}
		if max(n, 0) != k.Len() {
			return fmt.Errorf("%s: ktape %d elements, kmsg %d", path, n, k.Len())
		}
		ev := reflect.ValueOf(ours)
		for i := 0; i < k.Len(); i++ {
			ep := fmt.Sprintf("%s[%d]", path, i)
			if f.Elem == protocol.KindStruct {
				if err := compareRecord(ours.([]*protocol.Record)[i], k.Index(i), v, ep); err != nil {
					return err
				}
				continue
			}
			ef := protocol.Field{Name: f.Name, Kind: f.Elem, NullableVersions: protocol.Never}
			if err := compareValue(ef, ev.Index(i).Interface(), k.Index(i), v, ep); err != nil {
				return err
			}
		}
		return nil
	case protocol.KindString:
		if k.Kind() == reflect.Pointer {
			if k.IsNil() {
				if ours != nil && !(!nullable && ours == "") {
					return mismatch()
				}
				return nil
			}
			k = k.Elem()
		}
		s, _ := ours.(string)
		if s != k.String() || (nullable && ours == nil) {
			return mismatch()
		}
		return nil
	case protocol.KindBytes, protocol.KindRecords:
		b, _ := ours.([]byte)
		kb := k.Bytes()
		if !bytes.Equal(b, kb) || (nullable && (b == nil) != (kb == nil)) {
			return mismatch()
		}
		return nil
	case protocol.KindUUID:
		if ours.([16]byte) != k.Interface().([16]byte) {
			return mismatch()
		}
		return nil
	case protocol.KindBool:
		if ours.(bool) != k.Bool() {
			return mismatch()
		}
		return nil
	case protocol.KindFloat64:
		if math.Float64bits(ours.(float64)) != math.Float64bits(k.Float()) {
			return mismatch()
		}
		return nil
	}
	// Integers: compare as int64 whatever the width and signedness.
	var want int64
	switch k.Kind() {
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		want = k.Int()
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		want = int64(k.Uint())
	default:
		return fmt.Errorf("%s: kmsg field is a %s", path, k.Kind())
	}
	got := reflect.ValueOf(ours)
	var g int64
	if got.CanInt() {
		g = got.Int()
	} else {
		g = int64(got.Uint())
	}
	if g != want {
		return mismatch()
	}
	return nil
}

func arrayLenOf(x any) int {
	if x == nil {
		return -1
	}
	rv := reflect.ValueOf(x)
	if rv.IsNil() {
		return -1
	}
	return rv.Len()
}

// fillKmsg sets every exported field of a kmsg struct to a random value.
func fillKmsg(v reflect.Value, rng *rand.Rand, top bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() || sf.Name == "Version" {
			continue
		}
		if sf.Name == "UnknownTags" {
			if rng.Intn(8) == 0 {
				tags := v.Field(i).Addr().Interface().(*kmsg.Tags)
				tags.Set(uint32(90+rng.Intn(30)), randBytes(rng))
			}
			continue
		}
		fillValue(v.Field(i), rng)
	}
}

func fillValue(f reflect.Value, rng *rand.Rand) {
	switch f.Kind() {
	case reflect.Bool:
		f.SetBool(rng.Intn(2) == 0)
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		f.SetInt(randInt(rng, f.Type().Bits()))
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		f.SetUint(uint64(randInt(rng, f.Type().Bits())) & (1<<f.Type().Bits() - 1))
	case reflect.Float64:
		f.SetFloat(rng.NormFloat64() * 1e6)
	case reflect.String:
		f.SetString(randString(rng))
	case reflect.Array: // [16]byte uuid
		for i := 0; i < f.Len(); i++ {
			f.Index(i).SetUint(uint64(rng.Intn(256)))
		}
	case reflect.Pointer:
		if rng.Intn(3) == 0 {
			f.Set(reflect.Zero(f.Type()))
			return
		}
		p := reflect.New(f.Type().Elem())
		fillValue(p.Elem(), rng)
		f.Set(p)
	case reflect.Struct:
		fillKmsg(f, rng, false)
	case reflect.Slice:
		if f.Type().Elem().Kind() == reflect.Uint8 {
			if rng.Intn(4) == 0 {
				f.SetBytes(nil)
			} else {
				f.SetBytes(randBytes(rng))
			}
			return
		}
		if rng.Intn(5) == 0 {
			f.Set(reflect.Zero(f.Type()))
			return
		}
		n := rng.Intn(4)
		s := reflect.MakeSlice(f.Type(), n, n)
		for i := 0; i < n; i++ {
			fillValue(s.Index(i), rng)
		}
		f.Set(s)
	}
}

func randInt(rng *rand.Rand, bits int) int64 {
	switch rng.Intn(4) {
	case 0:
		return 0
	case 1:
		return -1
	case 2:
		return int64(rng.Intn(100))
	}
	return rng.Int63() >> (64 - bits) // full width, either sign
}

func randString(rng *rand.Rand) string {
	const letters = "abcdefghijklmnopqrstuvwxyz-._é"
	n := rng.Intn(12)
	b := make([]rune, n)
	for i := range b {
		b[i] = []rune(letters)[rng.Intn(len([]rune(letters)))]
	}
	return string(b)
}

func randBytes(rng *rand.Rand) []byte {
	b := make([]byte, rng.Intn(20))
	rng.Read(b)
	return b
}

// randomRecord builds a Record of schema s with random values in every
// field on the wire at version v.
func randomRecord(s *protocol.Schema, v int16, rng *rand.Rand, depth int) *protocol.Record {
	r := protocol.NewRecord(s)
	for i := 0; i < s.NumFields(); i++ {
		f := s.Field(i)
		if !f.Versions.Contains(v) {
			continue
		}
		if !f.TaggedVersions.IsNever() && f.TaggedVersions.Contains(v) && rng.Intn(3) == 0 {
			continue // leave a tagged field at its default: not sent
		}
		h := s.Handle(f.Name)
		nullable := f.NullableVersions.Contains(v)
		if nullable && rng.Intn(4) == 0 {
			r.Set(h, nil)
			continue
		}
		switch f.Kind {
		case protocol.KindStruct:
			r.Set(h, randomRecord(s.Child(h), v, rng, depth+1))
		case protocol.KindArray:
			r.Set(h, randomArray(s, h, f, v, rng, depth))
		default:
			r.Set(h, randomScalar(f.Kind, rng))
		}
	}
	return r
}

func randomArray(s *protocol.Schema, h protocol.Handle, f protocol.Field, v int16, rng *rand.Rand, depth int) any {
	n := rng.Intn(4)
	if depth > 3 {
		n = 0
	}
	if f.Elem == protocol.KindStruct {
		out := make([]*protocol.Record, n)
		for i := range out {
			out[i] = randomRecord(s.Child(h), v, rng, depth+1)
		}
		return out
	}
	var elems []any
	for i := 0; i < n; i++ {
		elems = append(elems, randomScalar(f.Elem, rng))
	}
	// Build a typed slice of the element's Go type.
	proto := randomScalar(f.Elem, rng)
	out := reflect.MakeSlice(reflect.SliceOf(reflect.TypeOf(proto)), n, n)
	for i, e := range elems {
		out.Index(i).Set(reflect.ValueOf(e))
	}
	return out.Interface()
}

func randomScalar(k protocol.Kind, rng *rand.Rand) any {
	switch k {
	case protocol.KindBool:
		return rng.Intn(2) == 0
	case protocol.KindInt8:
		return int8(randInt(rng, 8))
	case protocol.KindInt16:
		return int16(randInt(rng, 16))
	case protocol.KindUint16:
		return uint16(randInt(rng, 16))
	case protocol.KindInt32, protocol.KindVarint:
		return int32(randInt(rng, 32))
	case protocol.KindUint32:
		return uint32(randInt(rng, 32))
	case protocol.KindInt64, protocol.KindVarlong:
		return randInt(rng, 64)
	case protocol.KindFloat64:
		return rng.NormFloat64()
	case protocol.KindUUID:
		var u [16]byte
		rng.Read(u[:])
		return u
	case protocol.KindString:
		return randString(rng)
	case protocol.KindBytes, protocol.KindRecords:
		return append([]byte{}, randBytes(rng)...)
	}
	panic("no random value for " + k.String())
}
