package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"path/filepath"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// bar is one labelled bar of a chart.
type bar struct {
	label string
	value float64
	impl  string // picks the colour
}

var barColors = map[string]color.RGBA{
	implTachyon: {0x2b, 0x6c, 0xb0, 0xff},
	implGo:      {0xe0, 0x8a, 0x1e, 0xff},
	"HTTP":      {0x55, 0x55, 0x55, 0xff},
}

// drawBars writes a horizontal bar chart as a PNG: the label left, the bar,
// then the value with unit.
func drawBars(path, title, unit string, bars []bar) error {
	const (
		labelW = 200
		barMax = 440
		valueW = 110
		rowH   = 22
		top    = 34
	)
	w, h := labelW+barMax+valueW, top+rowH*len(bars)+10
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	text := func(x, y int, s string) {
		d := font.Drawer{Dst: img, Src: image.Black, Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
		d.DrawString(s)
	}
	text(8, 20, title)
	vmax := 0.0
	for _, b := range bars {
		vmax = max(vmax, b.value)
	}
	for i, b := range bars {
		y := top + i*rowH
		text(8, y+14, b.label)
		n := 0
		if vmax > 0 {
			n = int(b.value / vmax * (barMax - 10))
		}
		c, ok := barColors[b.impl]
		if !ok {
			c = barColors["HTTP"]
		}
		draw.Draw(img, image.Rect(labelW, y+3, labelW+n, y+rowH-3), &image.Uniform{c}, image.Point{}, draw.Src)
		text(labelW+n+6, y+14, fmt.Sprintf("%.2f %s", b.value, unit))
	}
	return writePNG(path, img)
}

// chartFiles are the charts' names under the charts directory.
const (
	chartThroughput = "throughput.png"
	chartSetup      = "setup-latency.png"
	chartMemory     = "memory-per-conn.png"
)

func (r *results) drawCharts(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("charts: %w", err)
	}
	var up []bar
	for _, sec := range singleSecs() {
		for _, impl := range impls {
			up = append(up, bar{impl + " " + sec, median(r.uploads[serverKey{impl, sec}]), impl})
		}
		for _, kind := range httpKinds {
			if httpFamily(kind) == family(sec) && sec != secNoise {
				up = append(up, bar{kind, median(r.uploads[serverKey{kind, httpSec}]), "HTTP"})
			}
		}
	}
	up = append(up, bar{"bare crypto/tls 1.3", median(r.bareTLS), "HTTP"})
	if err := drawBars(filepath.Join(dir, chartThroughput), "Single-stream upload over loopback, MiB/s (higher is better)", "MiB/s", up); err != nil {
		return err
	}
	var dl []bar
	ms := func(su setup) float64 { return float64(percentile(r.dials[su], 0.5)) / 1e6 }
	for _, sec := range singleSecs() {
		for _, impl := range impls {
			dl = append(dl, bar{impl + " " + sec, ms(setup{impl, impl, sec}), impl})
		}
		if sec == secTLS {
			for _, n := range namedSecs {
				dl = append(dl, bar{implTachyon + " " + n, ms(setup{implTachyon, implTachyon, n}), implTachyon})
			}
		}
	}
	for _, kind := range httpKinds {
		dl = append(dl, bar{kind, ms(setup{kind, kind, httpSec}), "HTTP"})
	}
	if err := drawBars(filepath.Join(dir, chartSetup), "New connection + 1-byte round trip, median ms (lower is better)", "ms", dl); err != nil {
		return err
	}
	if len(r.idle) == 0 {
		return nil
	}
	var mem []bar
	for _, sec := range idleSecs {
		for _, impl := range impls {
			mem = append(mem, bar{impl + " " + sec, r.idle[serverKey{impl, sec}].rss / 1024, impl})
		}
	}
	return drawBars(filepath.Join(dir, chartMemory), "RSS per idle connection, both ends, KiB (lower is better)", "KiB", mem)
}

// writePNG encodes img into the file at path.
func writePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("chart %s: %w", path, err)
	}
	return f.Close()
}
