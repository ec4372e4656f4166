# The two commands of the README:
#   make demo   installs dependencies, builds, makes two small models, merges them
#   make test   installs dependencies, builds, runs every test
# Everything else here is a helper for those two.

BUILD_DIR ?= build
JOBS ?= $(shell nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all deps build python-deps demo test test-sanitize bench clean format

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

build: deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS)

# mlx (CPU) and mlx-lm in a venv, for the tests of llmerge's MLX output.
python-deps: build
	@bash scripts/install-python-deps.sh $(BUILD_DIR)/venv-mlx
	cmake -S . -B $(BUILD_DIR) -DLLMERGE_MLX_PYTHON=$(CURDIR)/$(BUILD_DIR)/venv-mlx/bin/python >/dev/null

demo: build
	@bash scripts/demo.sh $(BUILD_DIR)/src/llmerge

test: build python-deps
	cmake --build $(BUILD_DIR) -j $(JOBS)
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer.
test-sanitize: deps
	cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DLLMERGE_SANITIZE=address,undefined
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ctest --output-on-failure -j $(JOBS)

format:
	find src include tests bench -name '*.cpp' -o -name '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR) build-asan demo
