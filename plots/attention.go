package plots

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // face crops of an RMset
	_ "image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// RMFER's Fig. 4: the inter-sample attention between an RMset anchor, its
// positives and its negatives. The model embeds the group [anchor,
// P1…Pk, N1…Nm] as one batch; A = softmax(self-masked cos(z)/τ) is what
// IAL attends with, so after ACL the anchor's row should put its weight
// on the positives.
//
// The input is an attention dump, a JSON file:
//
//	{
//	  "format": "fer-attention/1",
//	  "model": "rmfer", "checkpoint": "runs/rmfer/best.ckpt",
//	  "tau": 1.0, "self_masking": true,
//	  "groups": [{
//	    "anchor": "mashup/120_3.jpg",
//	    "positives": ["mashup/118_0.jpg", ...],
//	    "negatives": ["mashup/20_3.jpg", ...],
//	    "attention": [[0, 0.21, ...], ...]   // (1+k+m)², rows sum to 1
//	  }, ...]
//	}
//
// File names are resolved against the dump's folder (or "root", when
// set) to draw the faces above the matrix; missing files are drawn as
// blank tiles.

// AttentionDumpFormat is the "format" of an attention dump.
const AttentionDumpFormat = "fer-attention/1"

// AttentionDump is a set of RMset groups with their attention matrices.
type AttentionDump struct {
	Format      string  `json:"format"`
	Model       string  `json:"model,omitempty"`
	Checkpoint  string  `json:"checkpoint,omitempty"`
	Tau         float64 `json:"tau,omitempty"`
	SelfMasking bool    `json:"self_masking"`
	// Root is the folder the groups' file names are relative to (default:
	// the dump's folder).
	Root   string           `json:"root,omitempty"`
	Groups []AttentionGroup `json:"groups"`
}

// AttentionGroup is one anchor with its positives and negatives and the
// attention matrix over [anchor, positives…, negatives…].
type AttentionGroup struct {
	Anchor    string      `json:"anchor"`
	Positives []string    `json:"positives"`
	Negatives []string    `json:"negatives"`
	Attention [][]float64 `json:"attention"`
}

// check validates the group's shape and values.
func (g *AttentionGroup) check() error {
	n := 1 + len(g.Positives) + len(g.Negatives)
	if len(g.Attention) != n {
		return fmt.Errorf("attention has %d rows, want 1 + %d positives + %d negatives = %d", len(g.Attention), len(g.Positives), len(g.Negatives), n)
	}
	for i, row := range g.Attention {
		if len(row) != n {
			return fmt.Errorf("attention row %d has %d values, want %d", i, len(row), n)
		}
		sum := 0.0
		for j, v := range row {
			if math.IsNaN(v) || v < 0 || v > 1 {
				return fmt.Errorf("attention[%d][%d] = %v, want a weight in [0, 1]", i, j, v)
			}
			sum += v
		}
		if math.Abs(sum-1) > 1e-3 {
			return fmt.Errorf("attention row %d sums to %.4f, want 1 (a row-softmax)", i, sum)
		}
	}
	return nil
}

// WriteAttentionDump writes d as JSON (atomically), filling Format.
func WriteAttentionDump(path string, d *AttentionDump) error {
	d.Format = AttentionDumpFormat
	for i := range d.Groups {
		if err := d.Groups[i].check(); err != nil {
			return fmt.Errorf("attention dump %s: group %d: %w", path, i, err)
		}
	}
	b, err := json.MarshalIndent(d, "", " ")
	if err != nil {
		return fmt.Errorf("attention dump %s: %w", path, err)
	}
	return writeAtomic(path, bytesWriter(append(b, '\n')))
}

type bytesWriter []byte

func (b bytesWriter) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(b)
	return int64(n), err
}

// ReadAttentionDump reads and checks an attention dump.
func ReadAttentionDump(path string) (*AttentionDump, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("attention dump: %w", err)
	}
	var d AttentionDump
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("attention dump %s: %w", path, err)
	}
	if d.Format != AttentionDumpFormat {
		return nil, fmt.Errorf("attention dump %s: format %q, want %q", path, d.Format, AttentionDumpFormat)
	}
	if len(d.Groups) == 0 {
		return nil, fmt.Errorf("attention dump %s: no groups", path)
	}
	for i := range d.Groups {
		if err := d.Groups[i].check(); err != nil {
			return nil, fmt.Errorf("attention dump %s: group %d: %w", path, i, err)
		}
	}
	if d.Root == "" {
		d.Root = filepath.Dir(path)
	}
	return &d, nil
}

// attentionGrid is A as a heat-map grid with row 0 at the top.
type attentionGrid struct{ a [][]float64 }

func (g attentionGrid) Dims() (c, r int)   { return len(g.a), len(g.a) }
func (g attentionGrid) Z(c, r int) float64 { return g.a[len(g.a)-1-r][c] }
func (g attentionGrid) X(c int) float64    { return float64(c) }
func (g attentionGrid) Y(r int) float64    { return float64(r) }

// AttentionMeans returns the anchor's mean attention to its positives and
// to its negatives (row 0 of A).
func AttentionMeans(g AttentionGroup) (pos, neg float64) {
	row := g.Attention[0]
	k := len(g.Positives)
	for j := 1; j <= k; j++ {
		pos += row[j]
	}
	for j := 1 + k; j < len(row); j++ {
		neg += row[j]
	}
	return pos / math.Max(1, float64(k)), neg / math.Max(1, float64(len(g.Negatives)))
}

// Attention draws group g of a dump as RMFER's Fig. 4: the attention
// matrix over [anchor, positives, negatives] as a heat map (rows attend
// to columns; the anchor's row and column are first, the groups are
// separated by lines, each cell labelled when the matrix is small), with
// the faces above their columns when root holds them (root "" draws no
// faces), written to path (.png, .svg, .pdf).
func Attention(path string, g AttentionGroup, root, title string) error {
	if err := g.check(); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	n := len(g.Attention)
	k := len(g.Positives)
	names := make([]string, n)
	names[0] = "A"
	for j := 1; j < n; j++ {
		if j <= k {
			names[j] = fmt.Sprintf("P%d", j)
		} else {
			names[j] = fmt.Sprintf("N%d", j-k)
		}
	}
	hi := 0.0
	for i, row := range g.Attention {
		for j, v := range row {
			if i != j { // the masked diagonal would flatten the scale
				hi = math.Max(hi, v)
			}
		}
	}
	if hi == 0 {
		hi = 1
	}
	pos, neg := AttentionMeans(g)
	full := fmt.Sprintf("anchor → positives %.3f  ·  anchor → negatives %.3f (mean attention)", pos, neg)
	if title != "" {
		full = title + "\n" + full
	}
	p := newPlot(full, "attended sample (A: anchor, P: positives, N: negatives)", "attending sample")
	pal, err := bluesPalette(101)
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	hm := plotter.NewHeatMap(attentionGrid{g.Attention}, pal)
	hm.Min, hm.Max = 0, hi
	p.Add(hm)
	if n <= 16 {
		fs := vg.Length(math.Min(9, 9*11/float64(n)))
		lab, err := cellLabels(p, n, fs, func(i, j int) (string, bool) {
			v := g.Attention[i][j]
			return fmt.Sprintf("%.2f", v), v/hi > 0.55
		})
		if err != nil {
			return fmt.Errorf("plot %s: %w", path, err)
		}
		p.Add(lab)
	}
	// group separators after the anchor and after the positives
	for _, at := range []float64{0.5, float64(k) + 0.5} {
		if at >= float64(n)-0.5 {
			continue
		}
		vl, err := plotter.NewLine(plotter.XYs{{X: at, Y: -0.5}, {X: at, Y: float64(n) - 0.5}})
		if err != nil {
			return fmt.Errorf("plot %s: %w", path, err)
		}
		hl, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: float64(n) - 1 - at}, {X: float64(n) - 0.5, Y: float64(n) - 1 - at}})
		if err != nil {
			return fmt.Errorf("plot %s: %w", path, err)
		}
		for _, l := range []*plotter.Line{vl, hl} {
			l.Color = color.RGBA{R: 0xd9, G: 0x5f, B: 0x02, A: 0xff}
			l.Width = vg.Points(1.5)
			p.Add(l)
		}
	}
	ynames := make([]string, n)
	for i := range names {
		ynames[n-1-i] = names[i]
	}
	p.NominalX(names...)
	p.NominalY(ynames...)

	faces := attentionFaces(g, root)
	w, h := Width, Width
	strip := vg.Length(0)
	if faces != nil {
		// the faces go between the title and the matrix
		strip = vg.Inch * 0.6
		h += strip
		p.Title.Padding += strip
	}
	return render(path, w, h, func(dc draw.Canvas) error {
		p.Draw(dc)
		if faces == nil {
			return nil
		}
		data := p.DataCanvas(dc)
		cell := (data.Max.X - data.Min.X) / vg.Length(n)
		side := min(cell*0.92, strip*0.85)
		bottom := data.Max.Y + (strip-side)/2
		for j, img := range faces {
			cx := data.Min.X + (vg.Length(j)+0.5)*cell
			r := vg.Rectangle{Min: vg.Point{X: cx - side/2, Y: bottom}, Max: vg.Point{X: cx + side/2, Y: bottom + side}}
			if img == nil {
				dc.SetColor(color.Gray{Y: 0xe0})
				dc.Fill(r.Path())
				continue
			}
			dc.DrawImage(r, img)
		}
		return nil
	})
}

// attentionFaces decodes the group's face crops from root; nil when root
// is empty or none of them can be read.
func attentionFaces(g AttentionGroup, root string) []image.Image {
	if root == "" {
		return nil
	}
	files := append(append([]string{g.Anchor}, g.Positives...), g.Negatives...)
	out := make([]image.Image, len(files))
	found := false
	for i, f := range files {
		if f == "" {
			continue
		}
		if !filepath.IsAbs(f) {
			f = filepath.Join(root, f)
		}
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		img, _, err := image.Decode(fh)
		fh.Close()
		if err == nil {
			out[i], found = img, true
		}
	}
	if !found {
		return nil
	}
	return out
}

// errNoGroup names the valid group indices.
func errNoGroup(d *AttentionDump, i int) error {
	return fmt.Errorf("group %d out of range: the dump has %d (0..%d)", i, len(d.Groups), len(d.Groups)-1)
}

// AttentionFromDump draws group i of the dump at path (see Attention).
func AttentionFromDump(out, dump string, i int, faces bool, title string) error {
	d, err := ReadAttentionDump(dump)
	if err != nil {
		return err
	}
	if i < 0 || i >= len(d.Groups) {
		return fmt.Errorf("plot %s: %w", out, errNoGroup(d, i))
	}
	root := ""
	if faces {
		root = d.Root
	}
	if title == "" {
		var parts []string
		for _, s := range []string{d.Model, d.Checkpoint} {
			if s != "" {
				parts = append(parts, s)
			}
		}
		if d.Tau > 0 {
			parts = append(parts, fmt.Sprintf("τ = %g", d.Tau))
		}
		title = strings.Join(parts, "  ·  ")
	}
	return Attention(out, d.Groups[i], root, title)
}
