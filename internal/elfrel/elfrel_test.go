package elfrel

import (
	"encoding/binary"
	"errors"
	"math/big"
	"reflect"
	"strings"
	"testing"
)

func enc(ws ...uint64) []byte {
	b := make([]byte, 8*len(ws))
	for i, w := range ws {
		binary.LittleEndian.PutUint64(b[8*i:], w)
	}
	return b
}

func decodeAll(table []byte) ([]uint64, error) {
	var out []uint64
	err := DecodeRELR(table, func(off uint64) error {
		out = append(out, off)
		return nil
	})
	return out, err
}

func TestDecodeRELR(t *testing.T) {
	const top = ^uint64(0) - 7 // the last aligned word
	for _, tc := range []struct {
		name  string
		table []byte
		want  []uint64
		err   string // "" for success
	}{
		{name: "empty", table: nil},
		{name: "one address", table: enc(0x1000), want: []uint64{0x1000}},
		{
			name:  "addresses and bitmaps",
			table: enc(0x1000, 1|1<<1|1<<3, 1|1<<1, 0x3000, 1|1<<63),
			want:  []uint64{0x1000, 0x1008, 0x1018, 0x1200, 0x3000, 0x3008 + 62*8},
		},
		{name: "empty bitmap advances", table: enc(0x1000, 1, 1|1<<1), want: []uint64{0x1000, 0x1008 + 63*8}},
		{name: "last word of the address space", table: enc(top, 1), want: []uint64{top}},
		{name: "bitmap up to the end", table: enc(top-63*8, 1|1<<63), want: []uint64{top - 63*8, top}},
		{name: "size", table: enc(0x1000)[:7], err: "not a multiple of 8"},
		{name: "bitmap first", table: enc(1 | 1<<1), err: "no address entry"},
		{name: "unaligned address", table: enc(0x1004), err: "not aligned"},
		{name: "bitmap past the end", table: enc(top, 1|1<<1), err: "past the end"},
		{name: "bitmap wraps", table: enc(top-8*8, 1|1<<20), err: "past the end"},
		{name: "second bitmap wraps", table: enc(top-70*8, 1, 1|1<<10), err: "past the end"},
		{name: "address after a full run", table: enc(top, 1, 0x2000, 1|1<<1), want: []uint64{top, 0x2000, 0x2008}},
	} {
		got, err := decodeAll(tc.table)
		if tc.err != "" {
			var re *RELRError
			if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: got %v, want a *RELRError saying %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %#x, %v, want %#x", tc.name, got, err, tc.want)
		}
	}
}

func TestDecodeRELRCallbackError(t *testing.T) {
	stop := errors.New("outside the image")
	n := 0
	err := DecodeRELR(enc(0x1000, 1|1<<1|1<<2), func(off uint64) error {
		n++
		if off == 0x1008 {
			return stop
		}
		return nil
	})
	if err != stop || n != 2 {
		t.Fatalf("got %v after %d calls, want the callback's error after 2", err, n)
	}
}

// referenceRELR decodes table the way the format defines it, with
// unbounded integers and no checks: the places, and whether one of them
// (or the end of its word) lies past 2^64 or comes before any address.
func referenceRELR(table []byte) (places []uint64, bad bool) {
	limit := new(big.Int).Lsh(big.NewInt(1), 64)
	var where *big.Int
	for i := 0; i+8 <= len(table); i += 8 {
		e := binary.LittleEndian.Uint64(table[i:])
		if e&1 == 0 {
			if e%8 != 0 {
				bad = true
			}
			places = append(places, e)
			where = new(big.Int).SetUint64(e + 8)
			if e+8 == 0 {
				where = new(big.Int).Set(limit)
			}
			continue
		}
		for bit := uint(0); bit < 63; bit++ {
			if e>>(bit+1)&1 == 0 {
				continue
			}
			if where == nil {
				return places, true
			}
			p := new(big.Int).Add(where, big.NewInt(int64(8*bit)))
			if new(big.Int).Add(p, big.NewInt(8)).Cmp(limit) > 0 {
				return places, true
			}
			places = append(places, p.Uint64())
		}
		if where == nil {
			return places, true
		}
		where.Add(where, big.NewInt(63*8))
	}
	return places, bad || len(table)%8 != 0
}

// FuzzDecodeRELR: any table decodes or fails with a *RELRError, never
// panics; a table the unchecked reference decodes with every place
// aligned and inside the address space decodes to the same places, and
// one it does not is refused.
func FuzzDecodeRELR(f *testing.F) {
	f.Add(enc(0x1000, 1|1<<1|1<<3, 1|1<<1, 0x3000, 1|1<<63))
	f.Add(enc(^uint64(0)-7, 1|1<<1))
	f.Add(enc(^uint64(0)-70*8, 1, 1|1<<10))
	f.Add(enc(1))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, table []byte) {
		got, err := decodeAll(table)
		var re *RELRError
		if err != nil && !errors.As(err, &re) {
			t.Fatalf("error %v is not a *RELRError", err)
		}
		want, bad := referenceRELR(table)
		if bad != (err != nil) {
			t.Fatalf("reference says malformed=%v, DecodeRELR says %v", bad, err)
		}
		if err == nil && !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Fatalf("decoded %#x, reference %#x", got, want)
		}
	})
}
