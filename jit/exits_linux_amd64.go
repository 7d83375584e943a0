package jit

// exitTable holds a machine's exits, numbered from 1 (number 0 is never
// handed out, so a zero exit number in the context means none).
//
// It grows by fixed chunks rather than as one slice: a program the size
// of a language runtime makes a few hundred thousand exits, and a slice
// grown by doubling copies them over and over into memory that is new
// each time, which costs a page fault per 4 KiB on first touch (the
// dominant cost of a large program's start-up, before chunks). A chunk
// is written once, and pointers into it stay valid until reset.
//
// exitTable is owned by its Machine and guarded as the machine's other
// translation state is (only the machine's thread, or m.mu, touches it).
type exitTable struct {
	// chunks hold the exits: exit i is chunks[i/exitChunkLen][i%exitChunkLen].
	// Chunks past the one n reaches are kept for reuse after a reset.
	chunks []*[exitChunkLen]exit
	// n is the number of exit numbers handed out, including 0.
	n int
}

// exitChunkLen is the number of exits in a chunk: 56 KiB of them.
const exitChunkLen = 1024

// len returns one more than the highest exit number handed out.
func (t *exitTable) len() int { return t.n }

// at returns exit id.
//
// Preconditions: 0 <= id < t.len().
func (t *exitTable) at(id int) *exit {
	return &t.chunks[id/exitChunkLen][id%exitChunkLen]
}

// add stores e as the next exit and returns its number.
func (t *exitTable) add(e exit) int {
	if t.n == 0 {
		t.n = 1
	}
	id := t.n
	c := id / exitChunkLen
	if c == len(t.chunks) {
		t.chunks = append(t.chunks, new([exitChunkLen]exit))
	}
	t.chunks[c][id%exitChunkLen] = e
	t.n++
	return id
}

// reset forgets every exit, keeping the chunks for the exits to come.
// The old exits are cleared lazily, as add overwrites them, except that
// the pointers they hold are dropped now so the fragments they name can
// be collected.
func (t *exitTable) reset() {
	for i := range t.chunks {
		if i*exitChunkLen >= t.n {
			break
		}
		clear(t.chunks[i][:min(exitChunkLen, t.n-i*exitChunkLen)])
	}
	t.n = 1
}
