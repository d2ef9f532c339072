// Package score measures a log-template extractor against labelled data (such as Loghub):
// grouping accuracy and parsing accuracy, computed from their definitions. Pure Go, no I/O.
package score

import (
	"fmt"
	"strings"
)

// GroupingAccuracy is the share of lines whose predicted group holds exactly the lines of
// their true group. truth and predicted hold one group label per line; labels of the two
// sides are unrelated. Truth A A B B against prediction x x y z gives 0.5: the x group
// equals the A group, y and z each hold only half of B.
func GroupingAccuracy(truth, predicted []string) (float64, error) {
	if len(truth) != len(predicted) {
		return 0, fmt.Errorf("%d truth labels but %d predicted labels", len(truth), len(predicted))
	}
	if len(truth) == 0 {
		return 0, nil
	}
	truthSize := make(map[string]int)
	for _, t := range truth {
		truthSize[t]++
	}
	type group struct {
		truth  string
		size   int
		single bool // every line of the predicted group has the same true label
	}
	groups := make(map[string]*group)
	for i, p := range predicted {
		g := groups[p]
		if g == nil {
			g = &group{truth: truth[i], single: true}
			groups[p] = g
		}
		g.size++
		if g.truth != truth[i] {
			g.single = false
		}
	}
	correct := 0
	for _, g := range groups {
		if g.single && truthSize[g.truth] == g.size {
			correct += g.size
		}
	}
	return float64(correct) / float64(len(truth)), nil
}

// ParsingAccuracy is the share of lines whose predicted template equals the true template
// after NormalizeTemplate on both sides.
func ParsingAccuracy(truth, predicted []string) (float64, error) {
	if len(truth) != len(predicted) {
		return 0, fmt.Errorf("%d truth templates but %d predicted templates", len(truth), len(predicted))
	}
	if len(truth) == 0 {
		return 0, nil
	}
	correct := 0
	cache := make(map[string]string)
	norm := func(s string) string {
		if n, ok := cache[s]; ok {
			return n
		}
		n := NormalizeTemplate(s)
		cache[s] = n
		return n
	}
	for i := range truth {
		if norm(truth[i]) == norm(predicted[i]) {
			correct++
		}
	}
	return float64(correct) / float64(len(truth)), nil
}

const wildcard = "<*>"

// NormalizeTemplate puts a template in the form both sides are compared in, so that
// harmless differences in how variables are drawn do not count as errors:
//  1. leading and trailing whitespace is removed and every run of whitespace becomes one space;
//  2. every run of digits that is not part of a word (its neighbours are neither letters nor
//     digits) becomes <*>, whichever side left it constant;
//  3. variables joined directly or by one of . : / - _ , @ # + = become one <*>, repeatedly:
//     "<*>:<*>" and "<*>.<*>.<*>" are "<*>", "blk_<*>" stays as it is.
func NormalizeTemplate(t string) string {
	t = strings.Join(strings.Fields(t), " ")
	var b strings.Builder
	b.Grow(len(t))
	for i := 0; i < len(t); {
		c := t[i]
		if isDigit(c) && (i == 0 || !isAlnum(t[i-1])) {
			j := i
			for j < len(t) && isDigit(t[j]) {
				j++
			}
			if j == len(t) || !isAlnum(t[j]) {
				b.WriteString(wildcard)
				i = j
				continue
			}
			b.WriteString(t[i:j])
			i = j
			continue
		}
		b.WriteByte(c)
		i++
	}
	t = b.String()
	for {
		prev := t
		t = strings.ReplaceAll(t, wildcard+wildcard, wildcard)
		for _, d := range ".:/-_,@#+=" {
			t = strings.ReplaceAll(t, wildcard+string(d)+wildcard, wildcard)
		}
		if t == prev {
			return t
		}
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlnum(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}
