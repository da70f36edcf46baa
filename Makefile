# Top-level entry points; CMake does the building. See README.md.
JOBS ?= $(shell nproc)
MAKEFLAGS += --no-print-directory
CMAKE ?= cmake
CC ?= cc

.PHONY: all release debug test test-asan bench run clean bootstrap check-clang

all: release

bootstrap:
	@scripts/bootstrap

release: bootstrap
	@$(CMAKE) -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
	@$(CMAKE) --build build -j $(JOBS)

debug: bootstrap
	@$(CMAKE) -S . -B build/debug -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@$(CMAKE) --build build/debug -j $(JOBS)

test: release
	@cd build && ctest --output-on-failure -j $(JOBS)

test-asan: bootstrap
	@$(CMAKE) -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DIG_SANITIZE=ON >/dev/null
	@$(CMAKE) --build build/asan -j $(JOBS)
	@cd build/asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)

# Builds with clang as well, to keep both compilers warning-free.
check-clang: bootstrap
	@$(CMAKE) -S . -B build/clang -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Release >/dev/null
	@$(CMAKE) --build build/clang -j $(JOBS)

bench: release
	@bench/proxy/run.sh
	@bench/distributed/run.sh
	@bench/engine/run.sh
	@IG_BIN_DIR=build node bench/lifecycle/run.mjs

# The demo models: random weights (gibberish text, real compute), written once.
DEMO_MODELS = build/demo/demo-chat.gguf build/demo/demo-embed.gguf

build/demo/demo-chat.gguf: | release
	@mkdir -p build/demo
	@build/mkgguf $@ --preset small

build/demo/demo-embed.gguf: | release
	@mkdir -p build/demo
	@build/mkgguf $@ --preset tiny --embedding

run: release $(DEMO_MODELS)
	@echo "infergate demo on http://127.0.0.1:8080 (Ctrl-C to stop). Try:"
	@echo "  curl -s http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' \\"
	@echo "    -d '{\"model\":\"demo\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}'"
	@echo "Dashboard: http://127.0.0.1:8080/ui/"
	@build/infergate serve -c examples/demo.yaml

clean:
	@rm -rf build

# libFuzzer harnesses (docs/FUZZING.md): built with clang in build/fuzz, each run for
# FUZZ_SECONDS from the seeds in tests/fuzz/corpus/NAME (read only). New inputs go to
# build/fuzz/corpus/NAME, crashes to build/fuzz/crashes/; fails when a harness crashed.
FUZZ_SECONDS ?= 60
FUZZ_HARNESSES ?= config gguf http_request request_json sse meter bus_frame

.PHONY: fuzz
fuzz: bootstrap
	@$(CMAKE) -S . -B build/fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
	  -DIG_FUZZ=ON >/dev/null
	@$(CMAKE) --build build/fuzz -j $(JOBS) --target $(addprefix fuzz_,$(FUZZ_HARNESSES))
	@mkdir -p build/fuzz/crashes
	@failed=; for h in $(FUZZ_HARNESSES); do \
	  mkdir -p build/fuzz/corpus/$$h; \
	  dict=; [ -f tests/fuzz/dict/$$h.dict ] && dict=-dict=tests/fuzz/dict/$$h.dict; \
	  echo "fuzz_$$h: $(FUZZ_SECONDS) s (log: build/fuzz/fuzz_$$h.log)"; \
	  if ! build/fuzz/fuzz_$$h build/fuzz/corpus/$$h tests/fuzz/corpus/$$h $$dict \
	      -max_total_time=$(FUZZ_SECONDS) -timeout=20 -rss_limit_mb=4096 \
	      -artifact_prefix=build/fuzz/crashes/$$h- -print_final_stats=1 \
	      >build/fuzz/fuzz_$$h.log 2>&1; then \
	    failed="$$failed $$h"; tail -n 40 build/fuzz/fuzz_$$h.log; \
	  fi; \
	  grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' build/fuzz/fuzz_$$h.log \
	    | sed 's/^/  /'; \
	done; \
	if [ -n "$$failed" ]; then \
	  echo "fuzz: crashes in:$$failed; inputs in build/fuzz/crashes/ (docs/FUZZING.md)"; exit 1; \
	fi
