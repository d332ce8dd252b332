# Thin wrapper over CMake. Each target installs missing Debian packages
# itself (scripts/deps.sh, via sudo when not root), configures and builds.
#   make run            build, start the demo upstreams and ferry with ./proxy.yaml
#   make test           build and run every test through ctest
#   make sanitize-test  the same suite in a second build with ASan + UBSan
#   make build | clean
# WERROR=1 turns compiler warnings into errors (CI sets it).

BUILD      ?= build
SAN_BUILD  ?= build-sanitize
WERROR     ?= 0
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS = -DFERRY_WERROR=$(if $(filter 1,$(WERROR)),ON,OFF)

.PHONY: all deps test-deps build run test sanitize-test clean

all: build

deps:
	@scripts/deps.sh

test-deps:
	@scripts/deps.sh --test

build: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	@scripts/run-demo.sh $(BUILD)

test: test-deps build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

sanitize-test: test-deps
	@cmake -S . -B $(SAN_BUILD) $(CMAKE_FLAGS) -DFERRY_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build $(SAN_BUILD) -j $(JOBS)
	@cd $(SAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS)

clean:
	rm -rf $(BUILD) $(SAN_BUILD)
