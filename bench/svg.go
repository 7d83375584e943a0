package bench

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Series is one line of a Plot: points (X[i], Y[i]) in order of X.
type Series struct {
	Name string
	X, Y []float64
}

// Plot is a line chart, one line per series, drawn as SVG with the
// standard library alone (the project takes no plotting dependency for
// a handful of figures). The output depends only on the fields, so the
// same data gives the same bytes.
type Plot struct {
	Title, Subtitle string
	XLabel, YLabel  string
	// XLog and YLog put the axis on a logarithmic scale: base 2 for x
	// (sizes), base 10 for y (counts).
	XLog, YLog bool
	// XFormat and YFormat label the ticks; nil prints the number.
	XFormat, YFormat func(float64) string
	// YMin and YMax fix the y range when YMax > YMin (success fractions
	// are always shown from 0 to 1); otherwise it fits the data.
	YMin, YMax float64
	// Dodge draws series i a pixel or two above or below its true
	// position, so that lines with equal values (many strategies place
	// everything) stay visible side by side instead of hiding each other.
	// The subtitle should say so.
	Dodge bool
	// Categories, when set, makes the x axis categorical: a series' X
	// values are indices into Categories, and each index is labelled with
	// its category's name.
	Categories []string
	// Bars draws the series as bars, grouped by x (bar i of a group is
	// series i), instead of lines. Bars rise or fall from BarBase (on a
	// log axis, 1 is the usual base: a ratio), or from the bottom of the
	// axis when BarBase lies outside it; a bar of no height is drawn one
	// pixel tall, so that it stays visible.
	Bars    bool
	BarBase float64
	Series  []Series
}

// Plot geometry in pixels.
const (
	plotW, plotH    = 860, 480
	padL, padR      = 84, 170 // the legend lives in the right margin
	padT, padB      = 72, 58
	markerR         = 2.5
	dodgeStep       = 1.6
	legendRowHeight = 17
)

// palette: colours far enough apart to tell a dozen lines apart, and
// dashes to tell apart the ones that share a colour.
var palette = []string{"#1f5fa8", "#d9480f", "#2b8a3e", "#c2255c", "#7048e8", "#868e96", "#e8a317", "#0b7285", "#82c91e", "#111111", "#f783ac", "#8c510a"}
var dashes = []string{"", "6,3", "2,2"}

// SVG renders the plot.
func (p *Plot) SVG() []byte {
	var b bytes.Buffer
	x0, x1, y0, y1 := p.bounds()
	ax, bx := float64(padL), float64(plotW-padR)
	ay, by := float64(plotH-padB), float64(padT)
	tx := func(x float64) float64 {
		if p.XLog {
			x, x0, x1 := math.Log2(x), math.Log2(x0), math.Log2(x1)
			return ax + (x-x0)/(x1-x0)*(bx-ax)
		}
		return ax + (x-x0)/(x1-x0)*(bx-ax)
	}
	ty := func(y float64) float64 {
		if p.YLog {
			y, y0, y1 := math.Log10(y), math.Log10(y0), math.Log10(y1)
			return ay + (y-y0)/(y1-y0)*(by-ay)
		}
		return ay + (y-y0)/(y1-y0)*(by-ay)
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", plotW, plotH, plotW, plotH)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", plotW, plotH)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", padL, esc(p.Title))
	// The subtitle's lines are the caller's: SVG text does not wrap.
	for i, line := range strings.Split(p.Subtitle, "\n") {
		if line != "" {
			fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" fill="#555">%s</text>`+"\n", padL, 40+14*i, esc(line))
		}
	}
	// Grid and ticks.
	b.WriteString(`<g stroke="#ddd" stroke-width="1">` + "\n")
	xt, yt := p.xTicks(x0, x1), p.yTicks(y0, y1)
	for _, x := range xt {
		fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s"/>`+"\n", f(tx(x)), f(ay), f(tx(x)), f(by))
	}
	for _, y := range yt {
		fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s"/>`+"\n", f(ax), f(ty(y)), f(bx), f(ty(y)))
	}
	b.WriteString("</g>\n")
	fmt.Fprintf(&b, `<rect x="%s" y="%s" width="%s" height="%s" fill="none" stroke="#333"/>`+"\n", f(ax), f(by), f(bx-ax), f(ay-by))
	for _, x := range xt {
		if p.Categories != nil {
			// Names are longer than numbers: slanted, ending under
			// their tick.
			fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="end" transform="rotate(-30 %s %s)">%s</text>`+"\n", f(tx(x)), f(ay+14), f(tx(x)), f(ay+14), esc(p.category(x)))
			continue
		}
		fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="middle">%s</text>`+"\n", f(tx(x)), f(ay+17), esc(label(p.XFormat, x)))
	}
	for _, y := range yt {
		fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="end">%s</text>`+"\n", f(ax-6), f(ty(y)+4), esc(label(p.YFormat, y)))
	}
	fmt.Fprintf(&b, `<text x="%s" y="%d" text-anchor="middle">%s</text>`+"\n", f((ax+bx)/2), plotH-14, esc(p.XLabel))
	fmt.Fprintf(&b, `<text transform="translate(16,%s) rotate(-90)" text-anchor="middle">%s</text>`+"\n", f((ay+by)/2), esc(p.YLabel))

	// Lines (or bars), then the legend.
	n := len(p.Series)
	if p.Bars {
		p.bars(&b, tx, ty, f, ay, by)
	}
	for i, s := range p.Series {
		if p.Bars {
			break
		}
		col, dash := palette[i%len(palette)], dashes[i%len(dashes)]
		off := 0.0
		if p.Dodge {
			off = (float64(i) - float64(n-1)/2) * dodgeStep
		}
		var pts bytes.Buffer
		var marks bytes.Buffer
		for j := range s.X {
			if !p.plottable(s.X[j], s.Y[j]) {
				continue
			}
			px, py := tx(s.X[j]), ty(s.Y[j])+off
			if pts.Len() > 0 {
				pts.WriteByte(' ')
			}
			pts.WriteString(f(px) + "," + f(py))
			fmt.Fprintf(&marks, `<circle cx="%s" cy="%s" r="%g"/>`, f(px), f(py), markerR)
		}
		fmt.Fprintf(&b, `<g fill="%s" stroke="%s"><title>%s</title>`+"\n", col, col, esc(s.Name))
		if dash != "" {
			fmt.Fprintf(&b, `<polyline fill="none" stroke-width="1.8" stroke-dasharray="%s" points="%s"/>`+"\n", dash, pts.String())
		} else {
			fmt.Fprintf(&b, `<polyline fill="none" stroke-width="1.8" points="%s"/>`+"\n", pts.String())
		}
		b.Write(marks.Bytes())
		b.WriteString("\n</g>\n")
	}
	lx := bx + 16
	for i, s := range p.Series {
		col, dash := palette[i%len(palette)], dashes[i%len(dashes)]
		ly := by + 8 + float64(i)*legendRowHeight
		da := ""
		if dash != "" {
			da = ` stroke-dasharray="` + dash + `"`
		}
		if p.Bars {
			fmt.Fprintf(&b, `<rect x="%s" y="%s" width="26" height="10" fill="%s"/>`, f(lx), f(ly-5), col)
		} else {
			fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2"%s/>`, f(lx), f(ly), f(lx+26), f(ly), col, da)
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="%g" fill="%s"/>`, f(lx+13), f(ly), markerR, col)
		}
		fmt.Fprintf(&b, `<text x="%s" y="%s">%s</text>`+"\n", f(lx+32), f(ly+4), esc(s.Name))
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// bars draws the series as grouped bars: at each x, one bar per series,
// side by side in 80% of the space between two x ticks.
func (p *Plot) bars(b *bytes.Buffer, tx, ty func(float64) float64, f func(float64) string, ay, by float64) {
	n := len(p.Series)
	if n == 0 {
		return
	}
	// The space between two x: the smallest gap of any series.
	gap := math.Inf(1)
	for _, s := range p.Series {
		for j := 1; j < len(s.X); j++ {
			gap = min(gap, math.Abs(tx(s.X[j])-tx(s.X[j-1])))
		}
	}
	if math.IsInf(gap, 0) {
		gap = (float64(plotW-padR) - float64(padL)) / 2
	}
	group := 0.8 * gap
	bw := group / float64(n)
	base := ay
	if y := ty(p.BarBase); !(p.YLog && p.BarBase <= 0) && y <= ay && y >= by {
		base = y
	}
	for i, s := range p.Series {
		col := palette[i%len(palette)]
		fmt.Fprintf(b, `<g fill="%s">`+"\n", col)
		for j := range s.X {
			if !p.plottable(s.X[j], s.Y[j]) {
				continue
			}
			x := tx(s.X[j]) - group/2 + float64(i)*bw
			top, h := min(ty(s.Y[j]), base), math.Abs(ty(s.Y[j])-base)
			if h < 1 {
				top, h = base-0.5, 1
			}
			name := s.Name
			if p.Categories != nil {
				name = p.category(s.X[j]) + " " + name
			}
			fmt.Fprintf(b, `<rect x="%s" y="%s" width="%s" height="%s"><title>%s: %s</title></rect>`+"\n",
				f(x), f(top), f(max(bw-1, 1)), f(h), esc(name), esc(label(p.YFormat, s.Y[j])))
		}
		b.WriteString("</g>\n")
	}
}

// category returns the name of the category at x, or x itself if there is
// none there.
func (p *Plot) category(x float64) string {
	if i := int(math.Round(x)); float64(i) == x && i >= 0 && i < len(p.Categories) {
		return p.Categories[i]
	}
	return label(p.XFormat, x)
}

// plottable leaves out what a log axis cannot show.
func (p *Plot) plottable(x, y float64) bool {
	return !(p.XLog && x <= 0) && !(p.YLog && y <= 0) && !math.IsNaN(y)
}

// bounds returns the axis ranges: x over the data; y fixed or over the
// data, widened to whole decades on a log axis.
func (p *Plot) bounds() (x0, x1, y0, y1 float64) {
	x0, x1, y0, y1 = math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range p.Series {
		for j := range s.X {
			if !p.plottable(s.X[j], s.Y[j]) {
				continue
			}
			x0, x1 = min(x0, s.X[j]), max(x1, s.X[j])
			y0, y1 = min(y0, s.Y[j]), max(y1, s.Y[j])
		}
	}
	if math.IsInf(x0, 0) { // no data
		x0, x1, y0, y1 = 1, 2, 0, 1
	}
	if p.Categories != nil {
		// Half a category of room on either side of the first and the
		// last.
		x0, x1 = -0.5, float64(len(p.Categories))-0.5
	} else if x0 == x1 {
		x1 = x0 * 2
	}
	if p.YMax > p.YMin {
		return x0, x1, p.YMin, p.YMax
	}
	if p.YLog {
		y0 = math.Pow(10, math.Floor(math.Log10(y0)))
		y1 = math.Pow(10, math.Ceil(math.Log10(y1)))
		if y0 == y1 {
			y1 *= 10
		}
		return x0, x1, y0, y1
	}
	if y0 > 0 {
		y0 = 0
	}
	if y1 <= y0 {
		y1 = y0 + 1
	}
	step := niceStep((y1 - y0) / 5)
	return x0, x1, y0, math.Ceil(y1/step) * step
}

// xTicks: on a log axis, powers of two, every second or fourth one when
// there are many; else five even steps.
func (p *Plot) xTicks(x0, x1 float64) []float64 {
	if p.Categories != nil {
		out := make([]float64, len(p.Categories))
		for i := range out {
			out[i] = float64(i)
		}
		return out
	}
	if !p.XLog {
		return linTicks(x0, x1)
	}
	lo, hi := math.Ceil(math.Log2(x0)), math.Floor(math.Log2(x1))
	every := math.Max(1, math.Ceil((hi-lo+1)/10))
	var out []float64
	for e := lo; e <= hi; e += every {
		out = append(out, math.Pow(2, e))
	}
	return out
}

// yTicks: on a log axis, powers of ten; else about five nice steps.
func (p *Plot) yTicks(y0, y1 float64) []float64 {
	if !p.YLog {
		return linTicks(y0, y1)
	}
	var out []float64
	for e := math.Round(math.Log10(y0)); e <= math.Round(math.Log10(y1)); e++ {
		out = append(out, math.Pow(10, e))
	}
	return out
}

func linTicks(a, b float64) []float64 {
	step := niceStep((b - a) / 5)
	var out []float64
	// Multiply rather than add, so that errors do not pile up; labels
	// round what is left (3*0.2 is 0.6000000000000001).
	for i := math.Ceil(a / step); i*step <= b+step/1e6; i++ {
		out = append(out, i*step)
	}
	return out
}

// niceStep rounds x up to 1, 2, 2.5 or 5 times a power of ten.
func niceStep(x float64) float64 {
	if x <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= x {
			return m * p
		}
	}
	return 10 * p
}

func label(fn func(float64) string, v float64) string {
	if fn != nil {
		return fn(v)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// CountLabel prints a count for a log axis: 1, 10, 100, 1k, 10k.
func CountLabel(v float64) string {
	if v >= 1000 {
		return strconv.FormatFloat(v/1000, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// SizeLabel prints a byte count in binary units for an axis: 64K, 1.5M, 2G.
func SizeLabel(v float64) string {
	for _, u := range []struct {
		n float64
		s string
	}{{1 << 30, "G"}, {1 << 20, "M"}, {1 << 10, "K"}} {
		if v >= u.n {
			return strconv.FormatFloat(v/u.n, 'f', -1, 64) + u.s
		}
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}
