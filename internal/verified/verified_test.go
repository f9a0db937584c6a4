package verified

import (
	"fmt"
	"testing"
)

func TestSumSeparatesParts(t *testing.T) {
	cases := []struct {
		domain string
		parts  [][]byte
	}{
		{"d", [][]byte{[]byte("ab"), []byte("c")}},
		{"d", [][]byte{[]byte("a"), []byte("bc")}},
		{"d", [][]byte{[]byte("abc")}},
		{"d", [][]byte{[]byte("abc"), nil}},
		{"da", [][]byte{[]byte("bc")}},
		{"e", [][]byte{[]byte("ab"), []byte("c")}},
	}
	seen := map[Digest]int{}
	for i, c := range cases {
		d := Sum(c.domain, c.parts...)
		if j, dup := seen[d]; dup {
			t.Fatalf("cases %d and %d give the same digest", j, i)
		}
		seen[d] = i
		if Sum(c.domain, c.parts...) != d {
			t.Fatalf("case %d: digest not stable", i)
		}
	}
}

func key(i int) Digest { return Sum("test", []byte(fmt.Sprint(i))) }

func TestTableGenerations(t *testing.T) {
	const max = 4
	tb := New[int](max)
	if _, ok := tb.Get(key(0)); ok {
		t.Fatal("empty table answered")
	}
	// An entry used in every generation survives a stream of entries
	// never used again; the bound holds throughout.
	tb.Add(key(0), 0)
	for i := 1; i <= 100; i++ {
		tb.Add(key(i), i)
		if n := tb.Len(); n > 2*max {
			t.Fatalf("%d entries kept, bound %d", n, 2*max)
		}
		if i%(max-1) == 0 {
			if v, ok := tb.Get(key(0)); !ok || v != 0 {
				t.Fatalf("after %d others: the entry in use was lost", i)
			}
		}
	}
	if _, ok := tb.Get(key(1)); ok {
		t.Fatal("an entry unused for two generations was kept")
	}
	for i := 100 - max + 1; i <= 100; i++ {
		if v, ok := tb.Get(key(i)); !ok || v != i {
			t.Fatalf("recent entry %d lost", i)
		}
	}
	// Adding what is already there does not start a generation.
	tb.Reset()
	for i := range max {
		tb.Add(key(i), i)
	}
	tb.Add(key(0), 0)
	for i := range max {
		if _, ok := tb.Get(key(i)); !ok {
			t.Fatalf("re-adding an entry pushed out entry %d", i)
		}
	}
	tb.Reset()
	if tb.Len() != 0 {
		t.Fatal("Reset kept entries")
	}
}
