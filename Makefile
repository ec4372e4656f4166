# The two commands of the README:
#   make demo   installs dependencies, builds, makes two small models, merges them
#   make test   installs dependencies, builds, runs every test (plain, ASan+UBSan,
#               TSan, fuzzers); `make test-quick` is the plain suite alone
# Everything else here is a helper for those two.

BUILD_DIR ?= build
JOBS ?= $(shell nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all deps build python-deps demo test test-quick test-python test-sanitize test-tsan fuzz bench clean format

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

build: deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS)

# A venv with mlx (CPU), mlx-lm, nanobind, scikit-build-core and pytest, for the
# tests of llmerge's MLX output and of the Python package; the build then
# includes the extension (LLMERGE_BUILD_PYTHON) for that venv's Python.
PY_VENV = $(CURDIR)/$(BUILD_DIR)/venv-mlx
python-deps: build
	@bash scripts/install-python-deps.sh $(BUILD_DIR)/venv-mlx
	cmake -S . -B $(BUILD_DIR) -DLLMERGE_MLX_PYTHON=$(PY_VENV)/bin/python \
	  -DLLMERGE_BUILD_PYTHON=ON -DPython_EXECUTABLE=$(PY_VENV)/bin/python >/dev/null

demo: build
	@bash scripts/demo.sh $(BUILD_DIR)/src/llmerge

# Every test: the suite (with the mlx/mlx-lm checks), the suite again under
# ASan+UBSan, the threaded parts under TSan, and a short run of each fuzzer.
test: test-quick test-sanitize test-tsan
	$(MAKE) fuzz FUZZ_SECONDS=$(CI_FUZZ_SECONDS)

# The plain build and the whole suite: the everyday developer loop.
test-quick: build python-deps
	cmake --build $(BUILD_DIR) -j $(JOBS)
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

# The Python package alone (tests/python/ through ctest; part of test-quick too).
# LLMERGE_TEST_INSTALL=0 skips the slow `pip install .` test.
test-python: python-deps
	cmake --build $(BUILD_DIR) -j $(JOBS)
	cd $(BUILD_DIR) && ctest --output-on-failure -R '^Python\.'

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer.
test-sanitize: deps
	cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DLLMERGE_SANITIZE=address,undefined
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ctest --output-on-failure -j $(JOBS)

# The multi-threaded parts (writer, executor, synth, the CLI end to end, faults)
# under ThreadSanitizer; only those test binaries are built.
TSAN_TESTS = model_writer_test merge_e2e_test faults_test synth_test api_test core_budget_test \
  compare_test vocabulary_test lora_test work_pool_test one_pass_recipe_test
test-tsan: deps
	cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLLMERGE_SANITIZE=thread
	cmake --build build-tsan -j $(JOBS) --target llmerge $(TSAN_TESTS)
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -j $(JOBS) \
	  -R '^(ModelWriter|MergeEndToEnd|Faults|Interrupt|Synth|Api|CoreBudget|Compare|Vocabulary|Lora[A-Za-z]*|WorkPool|OnePassTest)\.'

# libFuzzer targets (clang), FUZZ_SECONDS per target; see scripts/fuzz.sh.
FUZZ_SECONDS ?= 30
CI_FUZZ_SECONDS ?= 15
fuzz:
	JOBS=$(JOBS) bash scripts/fuzz.sh $(FUZZ_SECONDS)

# The end-to-end benchmark: writes bench/$(BENCH_SIZE)/results.{md,json,svg} (bench/results.md
# itself is bench/results.sh's). BENCH_SIZE=tiny|small|large;
# BENCH_FLAGS for more bench/run.sh options (e.g. --methods "linear ties"). Set MERGEKIT_VENV to a
# virtualenv with mergekit installed to compare with it.
BENCH_SIZE ?= small
BENCH_FLAGS ?=
bench: deps
	cmake -S . -B $(BUILD_DIR) -G Ninja -DLLMERGE_BUILD_BENCH=ON $(CMAKE_FLAGS)
	cmake --build $(BUILD_DIR) -j $(JOBS)
	bash bench/run.sh --size $(BENCH_SIZE) --llmerge $(BUILD_DIR)/src/llmerge \
	  --kernels $(BUILD_DIR)/bench/kernels_bench $(BENCH_FLAGS)

format:
	find src include tests bench -name '*.cpp' -o -name '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR) build-asan build-tsan build-fuzz demo
