package demolib

import "testing"

// TestExpected pins the formula with values worked by hand, so that a
// change to Expected that is not a change to libdemo.c shows up here.
func TestExpected(t *testing.T) {
	for _, tc := range []struct{ a, b, want int64 }{
		// 3*6+1 + 3*7+1 + Table[13&7=5]*7 + 7 + 7 + 1000
		{6, 7, 19 + 22 + 9*7 + 7 + 7 + 1000},
		// 1 + 1 + Table[0]*0 + 7 + 0 + 1000
		{0, 0, 1009},
		// -2 + 4 + Table[0]*1 + 7 + 1 + 1000
		{-1, 1, -2 + 4 + 3 + 7 + 1 + 1000},
	} {
		if got := Expected(tc.a, tc.b); got != tc.want {
			t.Errorf("Expected(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
	// Wrapping, as the C code's unsigned arithmetic.
	if got, want := Expected(-1<<63, -1), ExpectedWith(-1<<63, -1, InitialScale); got != want {
		t.Errorf("Expected and ExpectedWith disagree: %d, %d", got, want)
	}
}

func TestEmbedded(t *testing.T) {
	if len(SO) < 64 || string(SO[:4]) != "\x7fELF" {
		t.Fatalf("embedded %s is not an ELF file (%d bytes)", Name, len(SO))
	}
	if len(DLL) < 64 || string(DLL[:2]) != "MZ" {
		t.Fatalf("embedded %s is not a PE file (%d bytes)", DLLName, len(DLL))
	}
}
