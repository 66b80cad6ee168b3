// promcheck validates Prometheus rule files the way `promtool check rules`
// does (rulefmt: YAML shape, PromQL of every expr, templates of labels and
// annotations) without building promtool, whose service discovery pulls in
// every cloud SDK. Used by tests/unit/test_helm_monitoring.py; installed by
// devstack/bootstrap.sh.
//
//	promcheck FILE...
package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

func main() {
	failed := false
	for _, file := range os.Args[1:] {
		groups, errs := rulefmt.ParseFile(file, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.Default())
		for _, err := range errs {
			fmt.Fprintln(os.Stderr, err)
			failed = true
		}
		if groups != nil && len(errs) == 0 {
			rules := 0
			for _, group := range groups.Groups {
				rules += len(group.Rules)
			}
			fmt.Printf("%s: %d groups, %d rules: SUCCESS\n", file, len(groups.Groups), rules)
		}
	}
	if failed || len(os.Args) < 2 {
		os.Exit(1)
	}
}
