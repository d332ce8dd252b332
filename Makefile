# Thin wrapper over CMake. Each target installs missing Debian packages
# itself (scripts/deps.sh, via sudo when not root), configures and builds.
#   make run            build, start the demo upstreams and ferry with ./proxy.yaml
#   make test           build and run every test through ctest
#   make sanitize-test  the same suite in a second build with ASan + UBSan
#   make install        build and install under PREFIX (default /usr/local), staged
#                       under DESTDIR when set: bin/ferry, etc/ferry/proxy.yaml (an
#                       existing one is kept), the systemd unit, logrotate, man pages
#   make deb            a Debian package (CPack) in $(DEB_BUILD)/, prefix /usr
#   make build | clean
# WERROR=1 turns compiler warnings into errors (CI sets it).

BUILD      ?= build
SAN_BUILD  ?= build-sanitize
DEB_BUILD  ?= build-deb
PREFIX     ?= /usr/local
DESTDIR    ?=
WERROR     ?= 0
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS = -DFERRY_WERROR=$(if $(filter 1,$(WERROR)),ON,OFF)

.PHONY: all deps test-deps build run test sanitize-test install deb clean

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

# The install paths (unit, config) are fixed when CMake configures, so
# PREFIX is passed at configure time, not to `cmake --install`.
install: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	@DESTDIR=$(DESTDIR) cmake --install $(BUILD)

# A build of its own with prefix /usr and no tests; dpkg-dev provides
# dpkg-shlibdeps, which fills in the package's library dependencies.
deb: deps
	@scripts/deps.sh dpkg-dev
	@cmake -S . -B $(DEB_BUILD) $(CMAKE_FLAGS) -DCMAKE_INSTALL_PREFIX=/usr -DFERRY_TESTS=OFF >/dev/null
	@cmake --build $(DEB_BUILD) -j $(JOBS)
	@cd $(DEB_BUILD) && cpack -G DEB
	@ls $(DEB_BUILD)/*.deb

clean:
	rm -rf $(BUILD) $(SAN_BUILD) $(DEB_BUILD)
