package main

import (
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/spf13/pflag"
)

// Flag value types that check their input when it is set, so that a bad
// value is refused where it was given (command line, environment or a line
// of the config file) rather than later, when nobody knows where it came
// from.

// sizeUnits are the byte units a size may end in: IEC (powers of 1024) and
// SI (powers of 1000), each meaning exactly what its name says.
var sizeUnits = []struct {
	name string
	mult int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// parseSize parses a byte count: a plain number of bytes ("268435456"), or
// a number and a unit ("256MiB", "1.5 GiB", "500MB"). The result must be a
// whole number of bytes; signs and exponents are refused. Errors leave the
// value out: the caller's message names it, and where it came from.
func parseSize(s string) (int64, error) {
	num := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(num, u.name) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.name)), u.mult
			break
		}
	}
	whole, frac, _ := strings.Cut(num, ".")
	if !isDigits(whole) || (frac != "" && !isDigits(frac)) || strings.HasSuffix(num, ".") {
		return 0, errors.New("invalid size: want bytes, or a number and a unit such as 256MiB or 1GiB")
	}
	// (whole.frac × mult) exactly, in big integers: no rounding, no overflow.
	n, _ := new(big.Int).SetString(whole+frac, 10)
	n.Mul(n, big.NewInt(mult))
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil)
	q, rem := new(big.Int).QuoRem(n, scale, new(big.Int))
	switch {
	case rem.Sign() != 0:
		return 0, errors.New("invalid size: not a whole number of bytes")
	case !q.IsInt64():
		return 0, errors.New("invalid size: too large for 63 bits")
	}
	return q.Int64(), nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// formatSize is parseSize's inverse: the largest IEC unit that divides n
// exactly, so help texts show defaults as people write them.
func formatSize(n int64) string {
	for _, u := range []struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return fmt.Sprintf("%d%s", n/u.mult, u.name)
		}
	}
	return fmt.Sprint(n)
}

// sizeValue is an int64 byte count as a pflag.Value that takes units.
type sizeValue int64

var _ pflag.Value = (*sizeValue)(nil)

func newSizeValue(p *int64, def int64) *sizeValue {
	*p = def
	return (*sizeValue)(p)
}

func (v *sizeValue) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*v = sizeValue(n)
	return nil
}

func (v *sizeValue) String() string { return formatSize(int64(*v)) }
func (v *sizeValue) Type() string   { return "size" }

// enumValue is a string flag that accepts only the listed values. With
// fold, it matches them regardless of case and stores the listed spelling.
type enumValue struct {
	p       *string
	allowed []string
	fold    bool
}

var _ pflag.Value = (*enumValue)(nil)

func newEnumValue(p *string, def string, fold bool, allowed ...string) *enumValue {
	*p = def
	return &enumValue{p: p, allowed: allowed, fold: fold}
}

func (v *enumValue) Set(s string) error {
	for _, a := range v.allowed {
		if s == a || (v.fold && strings.EqualFold(s, a)) {
			*v.p = a
			return nil
		}
	}
	return errors.New("want " + orList(v.allowed))
}

func (v *enumValue) String() string { return *v.p }
func (v *enumValue) Type() string   { return "string" }

// orList renders a, b or c.
func orList(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}
