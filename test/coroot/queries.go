// Package coroot holds what Coroot's server reads from a node agent, as test data: the
// Prometheus queries of coroot-node-agent metrics in Coroot's constructor, with the labels each
// keeps (queries.yaml, its source in README.md). Acceptance tests load it with Queries and run
// each query against a Prometheus that scrapes the agent.
//
// It holds data and its loader only; it imports nothing of the agent.
package coroot

import (
	_ "embed"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

//go:embed queries.yaml
var queriesYAML []byte

// Status says whether codexray produces a query's metrics.
type Status string

const (
	// Provided means the acceptance test must find series with the required labels.
	Provided Status = "provided"
	// NotChecked means codexray emits the query's metrics but the acceptance workload does not
	// run what they measure (a server of the protocol); the test lists the query as not
	// checked, never as passing.
	NotChecked Status = "not_checked"
	// NotYetProvided means codexray has no source of the query's metrics (GPU, language
	// runtimes, a protocol without a parser); the test fails if the query returns series.
	NotYetProvided Status = "not_yet_provided"
)

// Query is one of Coroot's node-agent queries.
type Query struct {
	Name    string   `yaml:"name"`
	PromQL  string   `yaml:"query"`
	Metrics []string `yaml:"metrics"`
	Labels  []string `yaml:"labels"`
	// AgentLabels are labels coroot-node-agent's series of the query carry that Coroot drops.
	AgentLabels    []string `yaml:"agent_labels"`
	RequiredLabels []string `yaml:"required_labels"`
	IdentityAny    []string `yaml:"identity_any"`
	Feature        string   `yaml:"feature"`
	ProvidedBy     string   `yaml:"provided_by"`
	Status         Status   `yaml:"status"`
	Needs          string   `yaml:"needs"`
	// Why says, for a query that is not provided, what provides it or why nothing does.
	Why  string `yaml:"why"`
	Note string `yaml:"note"`
	// JoinsListen is the label by which Coroot finds the server of a connection: between two
	// workloads, its value must equal a listen_addr of ListenInfo on the server ("" when the
	// query has no destination).
	JoinsListen string `yaml:"joins_listen"`
}

// ListenInfo is the query whose listen_addr a JoinsListen label must equal.
const ListenInfo = "container_net_tcp_listen_info"

// KeptLabels are the labels Coroot keeps from the result of every query, besides Labels.
var KeptLabels = []string{"machine_id", "system_uuid", "container_id", "destination", "destination_ip", "actual_destination"}

// WithRange returns the query with Coroot's $RANGE placeholder replaced by window (e.g. "1m").
func (q Query) WithRange(window string) string {
	return strings.ReplaceAll(q.PromQL, "$RANGE", window)
}

// Queries parses queries.yaml and checks that each entry is complete.
func Queries() ([]Query, error) {
	return parseQueries(queriesYAML)
}

func parseQueries(data []byte) ([]Query, error) {
	var doc struct {
		Queries []Query `yaml:"queries"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parsing queries.yaml: %w", err)
	}
	seen := map[string]bool{}
	for i := range doc.Queries {
		q := &doc.Queries[i]
		switch {
		case q.Name == "" || q.PromQL == "" || len(q.Metrics) == 0:
			return nil, fmt.Errorf("query %q: name, query and metrics are required", q.Name)
		case seen[q.Name]:
			return nil, fmt.Errorf("query %q listed twice", q.Name)
		case q.Status != Provided && q.Status != NotChecked && q.Status != NotYetProvided:
			return nil, fmt.Errorf("query %q: status %q is none of %q, %q, %q", q.Name, q.Status, Provided, NotChecked, NotYetProvided)
		case (q.Status == Provided) != (q.Why == ""):
			return nil, fmt.Errorf("query %q: status %s with why %q: a query that is not provided says why, a provided one does not", q.Name, q.Status, q.Why)
		case q.Status == Provided && len(q.RequiredLabels) == 0:
			return nil, fmt.Errorf("query %q: a provided query needs required_labels", q.Name)
		case q.JoinsListen != "" && q.JoinsListen != "destination" && q.JoinsListen != "actual_destination":
			return nil, fmt.Errorf("query %q: joins_listen %q is neither destination nor actual_destination", q.Name, q.JoinsListen)
		case q.JoinsListen != "" && !slices.Contains(q.RequiredLabels, q.JoinsListen):
			return nil, fmt.Errorf("query %q: joins_listen %s is not among its required_labels", q.Name, q.JoinsListen)
		}
		seen[q.Name] = true
	}
	return doc.Queries, nil
}
