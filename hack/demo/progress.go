package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// progress prints the demo's stages. On a terminal the running stage is a
// spinner line redrawn in place; elsewhere (a pipe, a test) each stage and
// each change of its detail is a plain line.
type progress struct {
	out io.Writer
	tty bool
	mu  sync.Mutex
}

func newProgress(out io.Writer) *progress {
	return &progress{out: out, tty: isTerminal(out)}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && os.Getenv("TERM") != "dumb" && term.IsTerminal(int(f.Fd()))
}

// width is the terminal's width, so the spinner line never wraps (a wrapped
// line cannot be redrawn in place).
func (p *progress) width() int {
	if f, ok := p.out.(*os.File); ok {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 20 {
			return w - 1
		}
	}
	return 79
}

// printf writes a line of output between stages.
func (p *progress) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, format, args...)
}

// stage is one named step of the demo.
type stage struct {
	p       *progress
	name    string
	started time.Time
	mu      sync.Mutex
	detail  string
	stop    chan struct{}
	stopped chan struct{}
}

var spinnerFrames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// start begins a stage; finish it with done.
func (p *progress) start(name string) *stage {
	s := &stage{p: p, name: name, started: time.Now(), stop: make(chan struct{}), stopped: make(chan struct{})}
	if !p.tty {
		p.printf("• %s ...\n", name)
		close(s.stopped)
		return s
	}
	go s.spin()
	return s
}

func (s *stage) spin() {
	defer close(s.stopped)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		s.mu.Lock()
		detail := s.detail
		s.mu.Unlock()
		line := fmt.Sprintf("%s %s (%s)", spinnerFrames[i%len(spinnerFrames)], s.name, elapsed(s.started))
		if detail != "" {
			line += ": " + detail
		}
		s.p.printf("\r\033[K%s", truncate(line, s.p.width()))
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// update sets the stage's detail: the last thing that happened in it.
func (s *stage) update(detail string) {
	detail = strings.TrimSpace(detail)
	s.mu.Lock()
	changed := detail != s.detail
	s.detail = detail
	s.mu.Unlock()
	if changed && !s.p.tty && detail != "" {
		s.p.printf("    %s\n", detail)
	}
}

// tick sets the detail on a terminal only: chatter that shows the stage is
// alive, not worth a line of its own in a log.
func (s *stage) tick(detail string) {
	if !s.p.tty {
		return
	}
	s.mu.Lock()
	s.detail = strings.TrimSpace(detail)
	s.mu.Unlock()
}

// done ends the stage with a check mark, or a cross and the error.
func (s *stage) done(err error) {
	select {
	case <-s.stop:
		return // already done
	default:
	}
	close(s.stop)
	<-s.stopped
	mark := "✓"
	if err != nil {
		mark = "✗"
	}
	prefix := ""
	if s.p.tty {
		prefix = "\r\033[K"
	}
	s.p.printf("%s%s %s (%s)\n", prefix, mark, s.name, elapsed(s.started))
}

func elapsed(since time.Time) string {
	d := time.Since(since)
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Truncate(time.Second).String()
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
