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

func TestTableBound(t *testing.T) {
	tb := New[int](4)
	if _, ok := tb.Get(Sum("x")); ok {
		t.Fatal("empty table answered")
	}
	for i := range 4 {
		tb.Add(Sum(fmt.Sprint(i)), i)
	}
	for i := range 4 {
		if v, ok := tb.Get(Sum(fmt.Sprint(i))); !ok || v != i {
			t.Fatalf("entry %d: got %d, %v", i, v, ok)
		}
	}
	tb.Add(Sum("4"), 4) // full: starts over with this one
	if tb.Len() != 1 {
		t.Fatalf("table holds %d entries after filling up, want 1", tb.Len())
	}
	if _, ok := tb.Get(Sum("0")); ok {
		t.Fatal("entry kept past the bound")
	}
	if v, ok := tb.Get(Sum("4")); !ok || v != 4 {
		t.Fatal("newest entry lost when the table started over")
	}
	tb.Reset()
	if tb.Len() != 0 {
		t.Fatal("Reset kept entries")
	}
}
