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
	@build/infergate serve -c examples/demo.yaml

clean:
	@rm -rf build
