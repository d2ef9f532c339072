package codexrayreceiver

import (
	"bufio"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"
	"go.yaml.in/yaml/v3"

	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
)

// README.md is the configuration reference of the receiver. The tests below keep it from
// drifting away from the Config struct: every option must be documented, every documented
// option must exist, every documented default must be the real default, and the example
// block must set every option to its default.

// configDocSkipped are the top-level keys README.md leaves to documentation.md (generated from
// metadata.yaml, which has its own drift test).
var configDocSkipped = []string{"metrics", "resource_attributes", "events"}

// configOptionPaths returns the dotted YAML path of every option (leaf field) of typ, as a user
// writes it: mapstructure names, nested structs recursed into, squashed structs flattened
// into their parent.
func configOptionPaths(t *testing.T, typ reflect.Type, prefix string) []string {
	t.Helper()
	var paths []string
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		tag, ok := f.Tag.Lookup("mapstructure")
		if !ok {
			if f.IsExported() {
				t.Errorf("%s.%s has no mapstructure tag: give it one so its YAML name is explicit", typ, f.Name)
			}
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if slices.Contains(strings.Split(opts, ","), "squash") {
			paths = append(paths, configOptionPaths(t, ft, prefix)...)
			continue
		}
		if prefix == "" && slices.Contains(configDocSkipped, name) {
			continue
		}
		path := prefix + name
		if ft.Kind() == reflect.Struct {
			paths = append(paths, configOptionPaths(t, ft, path+".")...)
			continue
		}
		paths = append(paths, path)
	}
	return paths
}

// readmeOption is one row of an option table in README.md.
type readmeOption struct {
	path, defaultCell string
	line              int
}

var (
	optionTableHeader = regexp.MustCompile(`^\|\s*option\s*\|\s*default\s*\|\s*meaning\s*\|\s*$`)
	// readmeOptionRow matches "| `path` | default | meaning |".
	readmeOptionRow = regexp.MustCompile("^\\|\\s*`([^`]+)`\\s*\\|([^|]*)\\|")
	// codeSpan is the first `code` of a cell.
	codeSpan = regexp.MustCompile("`([^`]*)`")
)

// readmeExampleMarker precedes the ```yaml block that sets every option to its default.
const readmeExampleMarker = "<!-- config-example"

// readReadme returns the option rows of README.md and its example block.
func readReadme(t *testing.T) (options []readmeOption, example string) {
	t.Helper()
	options, example, _ = readReadmeAll(t)
	return options, example
}

// readmeMention is a `code` span of README.md outside the example block.
type readmeMention struct {
	text string
	line int
}

// readReadmeAll is readReadme plus every `code` span outside the example block.
func readReadmeAll(t *testing.T) (options []readmeOption, example string, mentions []readmeMention) {
	t.Helper()
	f, err := os.Open("README.md")
	require.NoError(t, err)
	defer f.Close()
	var (
		inExample, afterMarker bool
		block                  strings.Builder
	)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	inOptionTable := false // option tables have the header | option | default | meaning |
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if !strings.HasPrefix(line, "|") {
			inOptionTable = false
		}
		if !inExample {
			for _, m := range codeSpan.FindAllStringSubmatch(line, -1) {
				mentions = append(mentions, readmeMention{text: m[1], line: n})
			}
		}
		switch {
		case inExample && strings.HasPrefix(line, "```"):
			inExample = false
			example = block.String()
		case inExample:
			block.WriteString(line + "\n")
		case afterMarker && strings.HasPrefix(line, "```yaml"):
			inExample, afterMarker = true, false
		case strings.HasPrefix(line, readmeExampleMarker):
			require.Empty(t, example, "README.md: more than one %q marker", readmeExampleMarker)
			afterMarker = true
		case optionTableHeader.MatchString(line):
			inOptionTable = true
		case inOptionTable:
			if m := readmeOptionRow.FindStringSubmatch(line); m != nil {
				options = append(options, readmeOption{path: m[1], defaultCell: m[2], line: n})
			}
		}
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, example, "README.md: no ```yaml block after %q", readmeExampleMarker)
	return options, example, mentions
}

// documentedElsewhere reports whether a README row belongs to the families documentation.md
// lists (`metrics.<name>.enabled` and the like).
func documentedElsewhere(path string) bool {
	first, _, _ := strings.Cut(path, ".")
	return slices.Contains(configDocSkipped, first)
}

// nestedMap turns "a.b.c" and v into {a: {b: {c: v}}}.
func nestedMap(path string, v any) map[string]any {
	keys := strings.Split(path, ".")
	m := map[string]any{keys[len(keys)-1]: v}
	for i := len(keys) - 2; i >= 0; i-- {
		m = map[string]any{keys[i]: m}
	}
	return m
}

// unmarshalOverDefault decodes raw onto the default configuration, as the collector does.
//
// Exact equality with createDefaultConfig() is impossible for one kind of field: list options
// whose default is nil (logs.include, logs.exclude). Written as `[]` in YAML, confmap decodes
// them to an empty, non-nil slice, and no YAML spelling of "empty list" yields nil. Every
// reader of these fields only ranges over them or takes len, so nil and empty mean the same;
// unmarshalOverDefault therefore turns empty slices into nil before the comparison. Every
// other field, including the unexported ones of the metadata configs, is compared exactly.
func unmarshalOverDefault(t *testing.T, raw map[string]any) (*Config, error) {
	t.Helper()
	cfg := createDefaultConfig().(*Config)
	err := confmap.NewFromStringMap(raw).Unmarshal(cfg)
	emptySlicesToNil(reflect.ValueOf(cfg).Elem())
	return cfg, err
}

// defaultConfig is createDefaultConfig() normalised like unmarshalOverDefault's result.
func defaultConfig() *Config {
	cfg := createDefaultConfig().(*Config)
	emptySlicesToNil(reflect.ValueOf(cfg).Elem())
	return cfg
}

// emptySlicesToNil sets every settable empty slice below v to nil.
func emptySlicesToNil(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			emptySlicesToNil(v.Field(i))
		}
	case reflect.Slice:
		if v.Len() == 0 && !v.IsNil() && v.CanSet() {
			v.Set(reflect.Zero(v.Type()))
		}
	}
}

func TestConfigDocEveryOptionDocumented(t *testing.T) {
	paths := configOptionPaths(t, reflect.TypeOf(Config{}), "")
	require.NotEmpty(t, paths)
	rows, _ := readReadme(t)

	documented := map[string]int{}
	for _, r := range rows {
		if prev, dup := documented[r.path]; dup {
			t.Errorf("README.md:%d: `%s` is documented twice (first on line %d)", r.line, r.path, prev)
		}
		documented[r.path] = r.line
	}
	for _, p := range paths {
		if _, ok := documented[p]; !ok {
			t.Errorf("option `%s` exists in Config but has no row in README.md", p)
		}
	}
	for _, r := range rows {
		if !documentedElsewhere(r.path) && !slices.Contains(paths, r.path) {
			t.Errorf("README.md:%d documents `%s`, which is not an option of Config", r.line, r.path)
		}
	}
}

// sectionMention matches a `code` span that names an option of a section, such as
// `cgroups.root` in running text.
var sectionMention = regexp.MustCompile(`^(node|ebpf|taskstats|cgroups|containers|logs|cloud)(\.[a-z0-9_]+)+$`)

// TestConfigDocMentionsExist checks the options README.md names in running text and in the
// tables' meaning column, not only in the option column: each must be an option, a section
// holding options (`cloud.overrides`), or a resource attribute (`cloud.region`).
func TestConfigDocMentionsExist(t *testing.T) {
	paths := configOptionPaths(t, reflect.TypeOf(Config{}), "")
	valid := map[string]bool{}
	for _, p := range paths {
		valid[p] = true
		for i := strings.LastIndex(p, "."); i > 0; i = strings.LastIndex(p[:i], ".") {
			valid[p[:i]] = true
		}
	}
	ra := reflect.TypeOf(metadata.ResourceAttributesConfig{})
	for i := 0; i < ra.NumField(); i++ {
		name, _, _ := strings.Cut(ra.Field(i).Tag.Get("mapstructure"), ",")
		valid[name] = true
	}
	_, _, mentions := readReadmeAll(t)
	for _, m := range mentions {
		if sectionMention.MatchString(m.text) && !valid[m.text] {
			t.Errorf("README.md:%d mentions `%s`, which is neither an option, a section nor a resource attribute", m.line, m.text)
		}
	}
}

// TestConfigDocDefaults decodes the first `code` of each row's default cell as that option's
// YAML value and checks that it leaves the default configuration unchanged.
func TestConfigDocDefaults(t *testing.T) {
	rows, _ := readReadme(t)
	want := defaultConfig()
	for _, r := range rows {
		if documentedElsewhere(r.path) {
			continue
		}
		m := codeSpan.FindStringSubmatch(r.defaultCell)
		if m == nil {
			t.Errorf("README.md:%d: the default of `%s` is not written as `code`", r.line, r.path)
			continue
		}
		var v any
		if err := yaml.Unmarshal([]byte(m[1]), &v); err != nil {
			t.Errorf("README.md:%d: the default of `%s`, %q, is not YAML: %v", r.line, r.path, m[1], err)
			continue
		}
		got, err := unmarshalOverDefault(t, nestedMap(r.path, v))
		if err != nil {
			t.Errorf("README.md:%d: `%s: %s` does not decode: %v", r.line, r.path, m[1], err)
			continue
		}
		assert.Equal(t, want, got, "README.md:%d: `%s: %s` is not the default", r.line, r.path, m[1])
	}
}

// TestConfigDocExample decodes the example block and checks that it sets every option, and
// each to its default.
func TestConfigDocExample(t *testing.T) {
	_, example := readReadme(t)
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(example), &doc), "README.md example")
	receivers, ok := doc["receivers"].(map[string]any)
	require.True(t, ok, "README.md example: no receivers: mapping")
	raw, ok := receivers["codexray"].(map[string]any)
	require.True(t, ok, "README.md example: no receivers.codexray: mapping")

	var leaves []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			leaves = append(leaves, prefix+k)
		}
	}
	walk("", raw)
	slices.Sort(leaves)
	paths := configOptionPaths(t, reflect.TypeOf(Config{}), "")
	slices.Sort(paths)
	assert.Equal(t, paths, leaves, "README.md example: the options it sets differ from Config's")

	got, err := unmarshalOverDefault(t, raw)
	require.NoError(t, err, "README.md example")
	assert.Equal(t, defaultConfig(), got, "README.md example: not the default configuration")
}
