// Command benchtable reads `go test -bench` output on stdin and prints one table: each
// benchmark with the figures it reported (b.ReportMetric), so a figure, its baseline
// measured in the same run and their ratio stand on one line. `make bench` pipes
// into it.
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"text/tabwriter"
)

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

// Row is one benchmark's reported metrics in report order.
type Row struct {
	Pkg     string
	Name    string
	Metrics [][2]string
}

// Parse reads go test output.
func Parse(r io.Reader) (rows []Row, failures []string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	pkg := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "pkg: "):
			pkg = strings.TrimPrefix(line, "pkg: ")
		case strings.HasPrefix(line, "--- FAIL") || strings.HasPrefix(line, "FAIL"):
			failures = append(failures, line)
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		f := strings.Fields(m[2])
		row := Row{Pkg: pkg, Name: m[1]}
		for i := 0; i+1 < len(f); i += 2 {
			if f[i+1] == "ns/op" || f[i+1] == "B/op" || f[i+1] == "allocs/op" {
				continue
			}
			row.Metrics = append(row.Metrics, [2]string{f[i+1], f[i]})
		}
		rows = append(rows, row)
	}
	return rows, failures
}

func main() {
	rows, failures := Parse(os.Stdin)
	// The table is laid out in memory (writes to a bytes.Buffer cannot fail)
	// and printed with one checked write.
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 2, 8, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "\nBENCHMARK\tFIGURES (measured in the same run)")
	for _, r := range rows {
		parts := make([]string, 0, len(r.Metrics))
		for _, m := range r.Metrics {
			parts = append(parts, m[0]+"="+m[1])
		}
		_, _ = fmt.Fprintf(tw, "%s\t%s\n", strings.TrimPrefix(r.Name, "Benchmark"), strings.Join(parts, "  "))
	}
	_ = tw.Flush()
	if _, err := os.Stdout.Write(table.Bytes()); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	if len(failures) > 0 {
		fmt.Println("\nFAILURES:")
		for _, f := range failures {
			fmt.Println("  " + f)
		}
		os.Exit(1)
	}
}
