package fer

import (
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// newBar returns a progress bar over n items on stderr. show nil means:
// only when stderr is a terminal (logs and CI stay clean).
func newBar(n int, desc string, show *bool) *progressbar.ProgressBar {
	return NewProgressBar(n, desc, "batch", show)
}

// NewProgressBar is a progress bar over n items (-1: unknown) counted in
// unit ("frames": the bar shows frames/s) on stderr; show nil means only
// when stderr is a terminal.
func NewProgressBar(n int, desc, unit string, show *bool) *progressbar.ProgressBar {
	visible := term.IsTerminal(int(os.Stderr.Fd()))
	if show != nil {
		visible = *show
	}
	return progressbar.NewOptions(n,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetVisibility(visible),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString(unit),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetWidth(30),
	)
}
