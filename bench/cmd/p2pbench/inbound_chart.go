package main

// A line chart for the -inbound staircase: one panel per stack side by
// side, all on one y scale so that the stacks compare too, a line per
// listener in chart.go's colours.

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// lineSeries is one listener's points, in ascending x.
type lineSeries struct {
	impl   string // names the line and picks its colour
	xs, ys []float64
}

type linePanel struct {
	title  string
	series []lineSeries
}

// niceStep is a tick step of 1, 2 or 5 times a power of ten that splits
// 0..vmax into at most about n intervals.
func niceStep(vmax float64, n int) float64 {
	if vmax <= 0 || n <= 0 {
		return 1
	}
	raw := vmax / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

// tickLabel prints a tick without trailing zeros: 2500, 0.5, 10k for
// multiples of 1000 of 10 000 and more.
func tickLabel(v float64) string {
	if v >= 10000 && math.Mod(v, 1000) == 0 {
		return fmt.Sprintf("%gk", v/1000)
	}
	return fmt.Sprintf("%g", v)
}

// drawLines writes the panels as a PNG: a title, a legend, and under it
// the panels, each with its axes, ticks and lines.
func drawLines(path, title, xLabel, yLabel string, panels []linePanel) error {
	if len(panels) == 0 {
		return fmt.Errorf("chart %s: nothing to draw", path)
	}
	const (
		panelW, panelH = 300, 260
		left, right    = 52, 16 // plot margins inside a panel
		top, bottom    = 24, 36
		header         = 48 // title and legend
	)
	xmax, ymax := 0.0, 0.0
	for _, p := range panels {
		for _, s := range p.series {
			for i := range s.xs {
				xmax, ymax = max(xmax, s.xs[i]), max(ymax, s.ys[i])
			}
		}
	}
	xstep, ystep := niceStep(xmax, 4), niceStep(ymax, 5)
	xtop, ytop := math.Ceil(xmax/xstep)*xstep, math.Ceil(ymax/ystep)*ystep
	if xtop == 0 {
		xtop = 1
	}
	if ytop == 0 {
		ytop = 1
	}

	img := image.NewRGBA(image.Rect(0, 0, max(panelW*len(panels), 7*len(title)+16), header+panelH))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	text := func(x, y int, s string) {
		d := font.Drawer{Dst: img, Src: image.Black, Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
		d.DrawString(s)
	}
	textW := func(s string) int { return 7 * len(s) }
	grey := color.RGBA{0xdd, 0xdd, 0xdd, 0xff}
	axis := color.RGBA{0x44, 0x44, 0x44, 0xff}
	fill := func(r image.Rectangle, c color.Color) { draw.Draw(img, r, &image.Uniform{c}, image.Point{}, draw.Src) }

	text(8, 18, title)
	lx := 8
	seen := map[string]bool{}
	for _, p := range panels {
		for _, s := range p.series {
			if seen[s.impl] {
				continue
			}
			seen[s.impl] = true
			fill(image.Rect(lx, 30, lx+18, 40), lineColor(s.impl))
			text(lx+24, 40, s.impl)
			lx += 24 + textW(s.impl) + 20
		}
	}
	text(lx+10, 40, fmt.Sprintf("x: %s, y: %s", xLabel, yLabel))

	for pi, p := range panels {
		ox, oy := pi*panelW, header
		x0, x1 := ox+left, ox+panelW-right
		y0, y1 := oy+panelH-bottom, oy+top // y0 is the bottom
		px := func(v float64) int { return x0 + int(math.Round(v/xtop*float64(x1-x0))) }
		py := func(v float64) int { return y0 - int(math.Round(v/ytop*float64(y0-y1))) }
		text(ox+left+(x1-x0-textW(p.title))/2, oy+14, p.title)
		for v := 0.0; v <= ytop+ystep/2; v += ystep {
			y := py(v)
			fill(image.Rect(x0, y, x1, y+1), grey)
			l := tickLabel(v)
			text(x0-6-textW(l), y+4, l)
		}
		for v := 0.0; v <= xtop+xstep/2; v += xstep {
			x := px(v)
			fill(image.Rect(x, y0, x+1, y0+4), axis)
			l := tickLabel(v)
			text(x-textW(l)/2, y0+16, l)
		}
		fill(image.Rect(x0, y1, x0+1, y0+1), axis)
		fill(image.Rect(x0, y0, x1, y0+1), axis)
		for _, s := range p.series {
			c := lineColor(s.impl)
			for i := range s.xs {
				x, y := px(s.xs[i]), py(s.ys[i])
				fill(image.Rect(x-3, y-3, x+4, y+4), c)
				if i > 0 {
					thickLine(img, px(s.xs[i-1]), py(s.ys[i-1]), x, y, c)
				}
			}
		}
	}

	return writePNG(path, img)
}

func lineColor(impl string) color.RGBA {
	if c, ok := barColors[impl]; ok {
		return c
	}
	return barColors["HTTP"]
}

// thickLine draws a line two pixels wide from (x0, y0) to (x1, y1).
func thickLine(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	n := max(abs(x1-x0), abs(y1-y0), 1)
	for i := 0; i <= n; i++ {
		x := x0 + (x1-x0)*i/n
		y := y0 + (y1-y0)*i/n
		for _, d := range [][2]int{{0, 0}, {1, 0}, {0, 1}, {1, 1}} {
			img.SetRGBA(x+d[0], y+d[1], c)
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
