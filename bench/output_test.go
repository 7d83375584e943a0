package bench

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

// What the CSV writers write, the readers read back to the same values:
// scripts/wine/merge merges per-process runs through them, and a lossy
// field would change the merged figures. Wall times only occur on real
// backends, so a row and a point get some by hand.
func TestCSVRoundTrip(t *testing.T) {
	files := sweepFiles(t)
	sizes, err := ReadSizeCSV(bytes.NewReader(files["sizes.csv"]))
	if err != nil {
		t.Fatal(err)
	}
	regions, err := ReadRegionCSV(bytes.NewReader(files["regions.csv"]))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := ReadCSV(bytes.NewReader(files["strategies.csv"]))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteSizeCSV(&b, sizes); err != nil || !bytes.Equal(b.Bytes(), files["sizes.csv"]) {
		t.Errorf("sizes.csv read and written again differs (%v)", err)
	}
	rows[0].SetupTime, rows[0].TeardownTime = 1234567*time.Nanosecond, 89*time.Microsecond
	regions[0].SetupTime, regions[0].TeardownTime, regions[0].SetupCalls = 3*time.Millisecond, 7, 410.5
	b.Reset()
	if err := WriteCSV(&b, rows); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadCSV(&b); err != nil || !slices.Equal(got, rows) {
		t.Errorf("rows read back as %+v (%v), want %+v", got, err, rows)
	}
	b.Reset()
	if err := WriteRegionCSV(&b, regions); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadRegionCSV(&b); err != nil || !slices.Equal(got, regions) {
		t.Errorf("region points read back as %+v (%v), want %+v", got, err, regions)
	}
	if _, err := ReadSizeCSV(bytes.NewReader(files["regions.csv"])); err == nil {
		t.Error("ReadSizeCSV took a region sweep")
	}
}
