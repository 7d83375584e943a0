package bench

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// The programs benchmark's inputs, generated: the same size gives the same
// bytes on every machine (a fixed-seed generator), so that every runner,
// and every run of the benchmark, works on the same data. Each is written
// once per directory and size.

// rng is xorshift64*: fast, and the same sequence everywhere.
type rng uint64

func (r *rng) next() uint64 {
	*r ^= *r >> 12
	*r ^= *r << 25
	*r ^= *r >> 27
	return uint64(*r) * 2685821657736338717
}

// vocabulary returns n pronounceable words of 2 to 9 letters.
func vocabulary(r *rng, n int) []string {
	const cons, vows = "bcdfghjklmnprstvwz", "aeiou"
	words := make([]string, n)
	for i := range words {
		var w []byte
		for k := 1 + r.next()%4; k > 0; k-- {
			w = append(w, cons[r.next()%uint64(len(cons))], vows[r.next()%uint64(len(vows))])
		}
		if r.next()%3 == 0 {
			w = append(w, cons[r.next()%uint64(len(cons))])
		}
		words[i] = string(w)
	}
	return words
}

// writeText writes n bytes of text-like data to path: lines of words from
// a vocabulary of 4096, drawn with a skew (a product of two uniform
// picks, so that a few words are frequent, as in prose or logs), and
// numbers. Compressors find in it what they find in text: xz makes about
// a fifth of it.
func writeText(path string, n int64) error {
	return writeFile(path, func(w *bufio.Writer) error {
		r := rng(0x9e3779b97f4a7c15)
		words := vocabulary(&r, 4096)
		var line []byte
		for written := int64(0); written < n; {
			line = line[:0]
			for k := 3 + r.next()%12; k > 0; k-- {
				i := (r.next() % 4096) * (r.next() % 4096) / 4096
				line = append(line, words[i]...)
				line = append(line, ' ')
			}
			line = strconv.AppendUint(line, r.next()%100000, 10)
			line = append(line, '\n')
			if rest := n - written; int64(len(line)) > rest {
				line = line[:rest]
			}
			w.Write(line)
			written += int64(len(line))
		}
		return nil
	})
}

// writeSQL writes a script for the sqlite3 shell: a table filled by rows
// INSERTs in one transaction, then an index, aggregates, a join, an
// update, a delete and sorted queries, every result printed exactly.
func writeSQL(path string, rows int64) error {
	return writeFile(path, func(w *bufio.Writer) error {
		r := rng(0x2545f4914f6cdd1d)
		words := vocabulary(&r, 512)
		fmt.Fprintln(w, "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v INTEGER, f REAL);")
		fmt.Fprintln(w, "BEGIN;")
		for i := int64(1); i <= rows; i++ {
			fmt.Fprintf(w, "INSERT INTO t VALUES(%d,'%s-%s',%d,%d.%03d);\n", i,
				words[r.next()%512], words[r.next()%512], r.next()%uint64(rows), r.next()%1000, r.next()%1000)
		}
		fmt.Fprintln(w, "COMMIT;")
		w.WriteString(`CREATE INDEX t_v ON t(v);
CREATE INDEX t_name ON t(name);
SELECT count(*), sum(v), printf('%.3f', avg(f)) FROM t;
SELECT v % 10 AS k, count(*), max(name), printf('%.3f', sum(f)) FROM t GROUP BY k ORDER BY k;
SELECT count(*), sum(a.v + b.v) FROM t a JOIN t b ON a.v = b.id WHERE a.id % 10 = 0;
SELECT substr(name, 1, 2) AS p, count(*) FROM t GROUP BY p ORDER BY count(*) DESC, p LIMIT 5;
UPDATE t SET v = v + 1, name = upper(name) WHERE id % 3 = 0;
DELETE FROM t WHERE id % 7 = 0;
SELECT count(*), sum(v), count(DISTINCT name) FROM t;
SELECT id, name FROM t ORDER BY f DESC, id LIMIT 3;
SELECT count(*) FROM t WHERE name LIKE '%ba%';
`)
		return nil
	})
}

// writeJSON writes an array of n objects for jq: a key, a number, a list
// of tags and a nested object.
func writeJSON(path string, n int64) error {
	return writeFile(path, func(w *bufio.Writer) error {
		r := rng(0x853c49e6748fea9b)
		words := vocabulary(&r, 256)
		w.WriteString("[\n")
		for i := int64(0); i < n; i++ {
			sep := ","
			if i == n-1 {
				sep = ""
			}
			fmt.Fprintf(w, `{"k":"%s","v":%d,"tags":["%s","%s"],"o":{"x":%d,"y":"%s"}}%s`+"\n",
				words[r.next()%256], r.next()%100000, words[r.next()%256], words[r.next()%256], i, words[r.next()%256], sep)
		}
		w.WriteString("]\n")
		return nil
	})
}

// jqFilter selects, groups and sums: jq's interpreter, its objects and
// its sort.
const jqFilter = `map(select(.v % 3 == 0)) | group_by(.k[0:2]) | map({p: .[0].k[0:2], n: length, s: (map(.v) | add), t: (map(.tags[0]) | unique | length)}) | sort_by(-.n) | .[0:8]`

// pythonBench is pure Python (no extension module does the work): integer
// and string arithmetic into a dict, a float loop, recursion, sorting and
// a list comprehension.
const pythonBench = `import sys
n = int(sys.argv[1])
def fib(k):
    return k if k < 2 else fib(k - 1) + fib(k - 2)
d = {}
acc = 0
for i in range(n):
    s = str(i * 7919 % 100003)
    d[s] = d.get(s, 0) + len(s)
    acc = (acc * 31 + i) % 1000000007
x = 0.0
for i in range(1, n):
    x += (i % 7) / i
words = sorted(("w%d" % (i * 2654435761 % 1000003) for i in range(n // 10)), reverse=True)
sq = sum([i * i for i in range(n) if i % 3])
print(len(d), acc, fib(20), "%.6f" % x, words[:2], sq)
`

// perlBench is Perl's hashes, string building and regular expressions.
const perlBench = `my $n = shift;
my (%h, $c);
for my $i (1 .. $n) {
    my $s = sprintf("k%05d-%s", $i % 50000, join("", map { chr(97 + ($i * $_) % 26) } 1 .. 6));
    $h{$s}++;
    $c++ if $s =~ /a.*b|z{2}|^k0+1/;
}
my @k = sort keys %h;
my $t = 0;
$t += length($_) for values %h;
print scalar(@k), " $c $t $k[0] $k[-1]\n";
`

// textInput writes text of n bytes (text-N.txt) and passes it last, after
// flags.
func textInput(flags ...string) func(dir string, n int64) ([]string, string, error) {
	return func(dir string, n int64) ([]string, string, error) {
		p := filepath.Join(dir, fmt.Sprintf("text-%d.txt", n))
		if err := once(p, func() error { return writeText(p, n) }); err != nil {
			return nil, "", err
		}
		return append(append([]string{}, flags...), p), "", nil
	}
}

// sqlInput runs sqlite3 on an in-memory database, the script of n rows on
// its standard input.
func sqlInput(dir string, n int64) ([]string, string, error) {
	p := filepath.Join(dir, fmt.Sprintf("rows-%d.sql", n))
	if err := once(p, func() error { return writeSQL(p, n) }); err != nil {
		return nil, "", err
	}
	return []string{":memory:"}, p, nil
}

// scriptInput writes the script to name and passes it n.
func scriptInput(name, script string) func(dir string, n int64) ([]string, string, error) {
	return func(dir string, n int64) ([]string, string, error) {
		p := filepath.Join(dir, name)
		if err := once(p, func() error { return os.WriteFile(p, []byte(script), 0o644) }); err != nil {
			return nil, "", err
		}
		return []string{p, strconv.FormatInt(n, 10)}, "", nil
	}
}

// jsonInput runs jqFilter over n objects.
func jsonInput(dir string, n int64) ([]string, string, error) {
	p := filepath.Join(dir, fmt.Sprintf("objects-%d.json", n))
	if err := once(p, func() error { return writeJSON(p, n) }); err != nil {
		return nil, "", err
	}
	return []string{"-c", jqFilter, p}, "", nil
}

// once runs write unless the file at path exists.
func once(path string, write func() error) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	return write()
}

// writeFile writes path through a buffered writer filled by fill, by way
// of a temporary name, so that a file that exists is whole.
func writeFile(path string, fill func(w *bufio.Writer) error) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	err = fill(w)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
